"""SR-side defenses of Choi et al. (2019): resize-by-one and geometric self-ensemble.

* :class:`ResizeByOne` - shrink the LR input by one pixel in each dimension with MATLAB
  bicubic and resize it back before SR: a mild, differentiable low-pass that disturbs the
  pixel alignment the perturbation relies on.
* :class:`SelfEnsemble` - run the SR model on the 8 flips/rotations of the input, undo each
  transform on the output and average (Lim et al.'s x8 self-ensemble); differentiable.

Both are differentiable, so the adaptive attack simply attacks the defended model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from advsr.defenses.base import Defense
from advsr.errors import ShapeError
from advsr.imaging.resize import imresize
from advsr.registry import Registry

__all__ = ["SR_DEFENSES", "DihedralViews", "ResizeByOne", "SelfEnsemble", "apply_sr_defense"]


class ResizeByOne(Defense):
    """``imresize(imresize(x, (H-1, W-1)), (H, W))`` (MATLAB bicubic, antialiased).

    Shape:
        ``(N, C, H, W)`` -> same.

    Example:
        >>> ResizeByOne()(torch.rand(1, 3, 9, 8)).shape
        torch.Size([1, 3, 9, 8])
    """

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < 3 or w < 3:
            raise ShapeError(f"resize-by-one needs at least 3x3 pixels, got {h}x{w}")
        small = imresize(x, size=(h - 1, w - 1))
        return imresize(small, size=(h, w)).clamp(0.0, 1.0)


class _DefendedSR(nn.Module):
    """An SR model behind an input defense: ``model(defense(x))``."""

    def __init__(self, model: nn.Module, defense: Defense) -> None:
        super().__init__()
        self.model = model
        self.defense = defense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.defense(x))


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations of the last two axes (k in 0..7).

    Shape:
        ``(..., H, W)`` -> ``(..., H, W)``, or ``(..., W, H)`` when ``k & 4``.
    """
    if k & 4:
        x = x.transpose(-1, -2)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


def _undo(y: torch.Tensor, k: int) -> torch.Tensor:
    if k & 1:
        y = y.flip(-1)
    if k & 2:
        y = y.flip(-2)
    if k & 4:
        y = y.transpose(-1, -2)
    return y


class DihedralViews(Defense):
    """The classifier form of the self-ensemble: the 8 flips/rotations of each image,
    stacked along the batch (view-major: rows ``t * N + i``); a defended classifier averages
    its class probabilities over the ``views`` (:class:`~advsr.defenses.adaptive.
    DefendedClassifier`). Deterministic and differentiable: the adaptive attack attacks the
    averaged prediction directly. Rotations need square images.

    Shape:
        ``(N, 3, H, H)`` -> ``(8 N, 3, H, H)``.
    """

    views = 8

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ShapeError(
                f"self-ensemble rotates images, so they must be square, got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        return torch.cat([dihedral(x, k) for k in range(8)])

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable itself."""
        return self.forward(x)


class SelfEnsemble(nn.Module):
    """Average of ``T^-1(f(T(x)))`` over the 8 dihedral transforms ``T``.

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [_undo(self.model(dihedral(x, k)), k) for k in range(8)]
        return torch.stack(outs).mean(dim=0)


SR_DEFENSES: Registry[Callable[[nn.Module], nn.Module]] = Registry("SR defense")
SR_DEFENSES.register(
    "resize-by-one", lambda m: _DefendedSR(m, ResizeByOne()), "shrink LR by 1 px and back"
)
SR_DEFENSES.register("self-ensemble", SelfEnsemble, "average over 8 flips/rotations")


def apply_sr_defense(name: str, model: nn.Module) -> nn.Module:
    """The SR model behind a registered SR-side defense (mode copied from ``model``)."""
    wrapped = SR_DEFENSES.get(name)(model)
    return wrapped.train(model.training)
