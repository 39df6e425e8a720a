"""Shared small types: the image alias and the attack budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch

from advsr.checks import check_non_negative, check_positive_int
from advsr.errors import InputError

__all__ = ["Budget", "Image", "Norm"]

Image: TypeAlias = torch.Tensor
"""A float32 batch ``(N, 3, H, W)``, RGB, values in ``[0, 1]``, on any device."""

Norm = Literal["linf", "l2"]


@dataclass(frozen=True)
class Budget:
    """Perturbation budget of an iterative attack.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: total radius of the allowed perturbation (on the [0, 1] scale), >= 0.
        steps: number of gradient steps, >= 1.
        step_size: size of one step; ``None`` (the default) is resolved to ``eps / steps``
            (the I-FGSM convention of Kurakin et al. and of the SR attack paper, where alpha
            is the total budget), so ``budget.step_size`` is always the size used.

    Example:
        >>> Budget("linf", 8 / 255, steps=10).step_size == 8 / 255 / 10
        True
    """

    norm: Norm = "linf"
    eps: float = 8 / 255
    steps: int = 10
    step_size: float | None = None

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise InputError(f"norm must be 'linf' or 'l2', got {self.norm!r}")
        check_non_negative(self.eps, "eps")
        check_positive_int(self.steps, "steps")
        if self.step_size is None:
            object.__setattr__(self, "step_size", self.eps / self.steps)
        check_non_negative(self.step_size, "step_size")
