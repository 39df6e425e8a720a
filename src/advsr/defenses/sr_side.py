"""SR-side defenses of Choi et al. (2019): resize-by-one and geometric self-ensemble.

* :class:`ResizeByOne` - shrink the LR input by one pixel in each dimension with MATLAB
  bicubic and resize it back before SR: a mild, differentiable low-pass that disturbs the
  pixel alignment the perturbation relies on.
* :class:`SelfEnsemble` - run the SR model on the 8 flips/rotations of the input, undo each
  transform on the output and average (Lim et al.'s x8 self-ensemble); differentiable.

Both are differentiable, so the adaptive attack simply attacks the defended model. Both are
registered for the ``sr`` domain (:func:`~advsr.defenses.registry.apply_sr_defense` puts an
SR model behind them) and the ``classifier`` domain (resize-by-one as an input
transformation; self-ensemble as :class:`DihedralViews`, whose class probabilities a
defended classifier averages).
"""

from __future__ import annotations

import torch
from torch import nn

from advsr.defenses.base import Defense
from advsr.defenses.registry import NoSettings, register_defense
from advsr.errors import ShapeError
from advsr.imaging.resize import imresize

__all__ = [
    "DihedralViews",
    "ResizeByOne",
    "SelfEnsemble",
    "build_resize_by_one",
    "build_resize_by_one_sr",
    "build_self_ensemble",
    "build_self_ensemble_sr",
    "dihedral",
]


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


def build_resize_by_one(s: NoSettings) -> ResizeByOne:
    """Resize-by-one in front of a classifier."""
    return ResizeByOne()


def build_resize_by_one_sr(s: NoSettings, model: nn.Module) -> nn.Module:
    """An SR model behind resize-by-one (shrink the LR input by one pixel and back)."""
    return _DefendedSR(model, ResizeByOne())


def build_self_ensemble(s: NoSettings) -> DihedralViews:
    """The 8 views a defended classifier averages over."""
    return DihedralViews()


def build_self_ensemble_sr(s: NoSettings, model: nn.Module) -> nn.Module:
    """An SR model averaged over the 8 flips/rotations."""
    return SelfEnsemble(model)


register_defense(
    "resize-by-one",
    settings=NoSettings,
    build=build_resize_by_one,
    description="shrink by one pixel and back (Choi et al. 2019)",
    classes=(ResizeByOne,),
    domains=("classifier", "sr"),
    build_sr=build_resize_by_one_sr,
)
register_defense(
    "self-ensemble",
    settings=NoSettings,
    build=build_self_ensemble,
    description="mean class probabilities over the 8 flips/rotations (Choi et al.'s SR defense)",
    classes=(DihedralViews,),
    domains=("classifier", "sr"),
    build_sr=build_self_ensemble_sr,
)
