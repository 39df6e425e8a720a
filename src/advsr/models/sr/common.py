"""Building blocks shared by the SR architectures, and the output contract.

Every zoo architecture maps ``(N, 3, h, w)`` RGB in ``[0, 1]`` to ``(N, 3, s*h, s*w)``. Models
trained on ``[0, 255]`` (EDSR, RCAN: ``rgb_range=255``) scale inside ``forward``. In eval mode
the output is clamped to ``[0, 1]`` (what any saved image is); in training mode it is not, so
the L1 loss keeps its gradient everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advsr.errors import InputError

__all__ = ["DIV2K_MEAN", "EDSRMeanShift", "ShifterMeanShift", "finish", "pixel_shuffle_upsampler"]

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
"""RGB mean of DIV2K used by EDSR, RCAN and CARN to centre their inputs."""


def finish(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Clamp to ``[0, 1]`` in eval mode; identity while training."""
    return out if module.training else out.clamp(0.0, 1.0)


class EDSRMeanShift(nn.Conv2d):
    """EDSR-PyTorch's MeanShift: a frozen 1x1 conv (keys ``weight``, ``bias``).

    ``sign=-1`` subtracts ``rgb_range * mean``, ``sign=+1`` adds it back (std 1).
    """

    def __init__(
        self, rgb_range: float, mean: tuple[float, float, float] = DIV2K_MEAN, sign: int = -1
    ) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(mean))  # type: ignore[union-attr]
        for p in self.parameters():
            p.requires_grad_(False)


class ShifterMeanShift(nn.Module):
    """CARN-pytorch's MeanShift: a frozen 1x1 conv under the name ``shifter``."""

    def __init__(self, mean: tuple[float, float, float] = DIV2K_MEAN, sub: bool = True) -> None:
        super().__init__()
        self.shifter = nn.Conv2d(3, 3, kernel_size=1)
        sign = -1.0 if sub else 1.0
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * torch.tensor(mean))  # type: ignore[union-attr]
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


def pixel_shuffle_upsampler(n_feats: int, scale: int, bias: bool = True) -> nn.Sequential:
    """EDSR-style upsampler: (conv to 4C, PixelShuffle(2)) x log2(s), or (conv 9C, PS(3)).

    Indices: conv layers at 0, 2, 4... (so official keys ``tail.0.0``, ``tail.0.2``).

    Shape:
        ``(N, C, h, w)`` -> ``(N, C, s*h, s*w)``.
    """
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1, bias=bias), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(n_feats, 9 * n_feats, 3, padding=1, bias=bias), nn.PixelShuffle(3)]
    else:
        raise InputError(f"scale {scale} is not supported (use 2, 3, 4 or 8)")
    return nn.Sequential(*layers)
