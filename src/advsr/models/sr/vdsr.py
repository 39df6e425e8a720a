"""VDSR (Kim et al. 2016) in the twtygqyy/pytorch-VDSR key layout, wrapped RGB -> RGB.

The network works on the luma of the bicubic-upsampled image: 20 bias-free 3x3 convs
(``input``, ``residual_layer.{0..17}.conv``, ``output``) predicting a residual. The zoo model
upsamples the RGB input with MATLAB bicubic, converts it to BT.601 YCbCr, runs the network
on Y (in ``[0, 1]`` on the ``/255`` scale, as the reference evaluation does), keeps the
bicubic Cb/Cr and converts back. One set of weights serves x2, x3 and x4.
"""

from __future__ import annotations

import torch
from torch import nn

from advsr.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
from advsr.imaging.resize import imresize
from advsr.models.sr.common import finish
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["VDSR"]


class _ConvReLU(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class VDSR(nn.Module):
    """Very Deep SR network on the Y channel of the bicubic upsampling.

    Args:
        scale: upsampling factor (the weights are scale-agnostic).
        depth: conv layers in all (20).
        n_feats: channels (64).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> VDSR(2, depth=4, n_feats=8)(torch.rand(1, 3, 5, 6)).shape
        torch.Size([1, 3, 10, 12])
    """

    def __init__(self, scale: int, depth: int = 20, n_feats: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.input = nn.Conv2d(1, n_feats, 3, 1, 1, bias=False)
        self.residual_layer = nn.Sequential(*[_ConvReLU(n_feats) for _ in range(depth - 2)])
        self.output = nn.Conv2d(n_feats, 1, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        """The network itself on luma ``(N, 1, H, W)`` (already upsampled)."""
        out = self.residual_layer(self.relu(self.input(y)))
        return self.output(out) + y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = imresize(x, float(self.scale))
        ycc = rgb_to_ycbcr(up)
        y = self.forward_y(ycc[:, :1])
        return finish(self, ycbcr_to_rgb(torch.cat([y, ycc[:, 1:]], dim=1)))


register_sr_model(
    "vdsr",
    SRModelEntry(
        VDSR,
        (2, 3, 4),
        "VDSR on Y of the bicubic upsampling, RGB in/out",
        reference="twtygqyy/pytorch-vdsr vdsr.py",
        tiny={"depth": 3, "n_feats": 8},
    ),
)
