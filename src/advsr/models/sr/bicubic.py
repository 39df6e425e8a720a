"""Bicubic upscaling as a parameter-free SR model (the baseline of every SR table)."""

from __future__ import annotations

import torch
from torch import nn

from advsr.checks import check_image, check_scale
from advsr.imaging.resize import imresize
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["Bicubic"]


class Bicubic(nn.Module):
    """MATLAB-compatible bicubic upscaling, clipped to ``[0, 1]``.

    Args:
        scale: integer SR factor.
        clip: clamp the output to ``[0, 1]`` (the cubic kernel overshoots at edges).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> Bicubic(2)(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self, scale: int, clip: bool = True) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "LR image")
        y = imresize(x, float(self.scale))
        return y.clamp(0.0, 1.0) if self.clip else y


register_sr_model(
    "bicubic",
    SRModelEntry(
        Bicubic, (2, 3, 4, 8), "MATLAB-compatible bicubic (no parameters)", needs_weights=False
    ),
)
