"""The Defense contract (DESIGN.md): an input transformation with explicit flags.

A defense maps a batch of ``[0, 1]`` images ``(N, 3, H, W)`` to a batch of ``[0, 1]``
images ``(N, 3, s*H, s*W)`` (``s = scale``, 1 for every defense except SR purification).

* ``differentiable``: autograd through ``forward`` gives a useful gradient, so an adaptive
  attack differentiates the defended model directly; otherwise BPDA uses
  ``surrogate(x)`` in the backward pass (identity unless a better approximation exists).
* ``stochastic``: ``forward(x, generator)`` draws random parameters (a mask, a size, a
  position) from ``generator`` on the CPU and then applies a deterministic kernel, so a seeded
  generator reproduces the output and EOT averages over fresh draws.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["Chain", "Defense"]


class Defense(nn.Module):
    """Base class of input-transformation defenses ``(N, 3, H, W) -> (N, 3, sH, sW)``."""

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False
    scale: int = 1
    views: int = 1
    """Outputs per input image, stacked along the batch (a classifier averages over them)."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size of the output for an ``h x w`` input."""
        return h * self.scale, w * self.scale

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable stand-in for BPDA (identity; bicubic resize if the size changes).

        Shape:
            ``(N, 3, H, W)`` -> ``(N, 3, s*H, s*W)``.
        """
        size = self.output_size(*x.shape[-2:])
        if size == tuple(x.shape[-2:]):
            return x
        return torch.nn.functional.interpolate(
            x, size=size, mode="bicubic", align_corners=False
        ).clamp(0.0, 1.0)


class Chain(Defense):
    """Defenses applied in order (e.g. quilting then TVM), one generator for all of them.

    Differentiable when every stage is, stochastic when any is; the surrogate chains the
    stages' surrogates.

    Shape:
        ``(N, 3, H, W)`` -> the last stage's output shape.
    """

    def __init__(self, *stages: Defense) -> None:
        super().__init__()
        if not stages:
            raise ValueError("a chain needs at least one defense")
        self.stages = nn.ModuleList(stages)

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        """All stages are differentiable."""
        return all(s.differentiable for s in self._stages())

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        """Some stage draws randomness."""
        return any(s.stochastic for s in self._stages())

    def _stages(self) -> list[Defense]:
        return [s for s in self.stages if isinstance(s, Defense)]

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Sizes through every stage."""
        for s in self._stages():
            h, w = s.output_size(h, w)
        return h, w

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for s in self._stages():
            x = s(x, generator)
        return x

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """The stages' surrogates in order."""
        for s in self._stages():
            x = s.surrogate(x)
        return x
