"""Rounding images to a bit depth, as writing them to an integer file would."""

from __future__ import annotations

import torch

from advsr.checks import check_positive_int

__all__ = ["quantize"]


def quantize(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clip to ``[0, 1]`` and round to ``2**bits - 1`` levels (what saving a PNG does).

    Not differentiable (zero gradient almost everywhere); attacks that need a gradient
    through it use BPDA.

    Shape:
        any -> same.

    Example:
        >>> quantize(torch.tensor([0.1234]), bits=8) * 255
        tensor([31.])
    """
    levels = float(2 ** check_positive_int(bits, "bits") - 1)
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels
