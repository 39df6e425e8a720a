"""SRResNet as released by xinntao (BasicSR ``MSRResNet``, the ESRGAN paper's SRResNet).

Ledig et al.'s SRGAN generator without batch normalisation (the form its authors' successors
released with weights; the SRGAN authors released no code): ``conv_first``,
``body.{i}.conv{1,2}`` (residual blocks conv-ReLU-conv), ``upconv1`` (+ ``upconv2`` for x4),
each followed by PixelShuffle and LeakyReLU(0.1), ``conv_hr``, ``conv_last``; the output adds
a bilinear upsampling of the input. Inputs in ``[0, 1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advsr.errors import InputError
from advsr.models.sr.common import finish
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["SRResNet"]


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class SRResNet(nn.Module):
    """Modified SRResNet (no BN).

    Args:
        scale: 2, 3 or 4.
        num_feat: channels (64).
        num_block: residual blocks (16).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> SRResNet(3, num_feat=8, num_block=1)(torch.rand(1, 3, 5, 6)).shape
        torch.Size([1, 3, 15, 18])
    """

    def __init__(self, scale: int, num_feat: int = 64, num_block: int = 16) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise InputError(f"SRResNet supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_Block(num_feat) for _ in range(num_block)])
        if scale == 4:
            self.upconv1 = nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1)
        else:
            self.upconv1 = nn.Conv2d(num_feat, scale * scale * num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        if self.scale == 4:
            out = self.lrelu(F.pixel_shuffle(self.upconv1(out), 2))
            out = self.lrelu(F.pixel_shuffle(self.upconv2(out), 2))
        else:
            out = self.lrelu(F.pixel_shuffle(self.upconv1(out), self.scale))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(
            x, scale_factor=float(self.scale), mode="bilinear", align_corners=False
        )
        return finish(self, out + base)


register_sr_model(
    "srresnet",
    SRModelEntry(
        SRResNet,
        (2, 3, 4),
        "SRResNet (BasicSR MSRResNet, no BN)",
        reference="xinntao/BasicSR basicsr/archs/srresnet_arch.py",
        tiny={"num_feat": 8, "num_block": 1},
    ),
)
