"""IMDN (Hui et al. 2019) in the Zheng222/IMDN key layout (files may carry ``module.``).

Keys: ``fea_conv``, ``IMDB{1..6}.c{1..5}``, ``IMDB{i}.cca.conv_du.{0,2}``, ``c.0`` (1x1 fusion,
LeakyReLU 0.05), ``LR_conv``, ``upsampler.0`` (conv to ``3 s^2`` then PixelShuffle).
Inputs in ``[0, 1]``.
"""

from __future__ import annotations

import torch
from torch import nn

from advsr.models.sr.common import finish
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["IMDN"]


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=(k - 1) // 2)


class _CCA(nn.Module):
    """Contrast-aware channel attention: (spatial std + mean) -> 1x1 down/up -> sigmoid."""

    def __init__(self, c: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(c, c // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // reduction, c, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.conv_du(std + mean)


class _IMDB(nn.Module):
    """Information multi-distillation block (distillation rate 1/4)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dc = c // 4
        self.rc = c - self.dc
        self.c1 = _conv(c, c, 3)
        self.c2 = _conv(self.rc, c, 3)
        self.c3 = _conv(self.rc, c, 3)
        self.c4 = _conv(self.rc, self.dc, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = _conv(4 * self.dc, c, 1)
        self.cca = _CCA(4 * self.dc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r = torch.split(self.act(self.c1(x)), [self.dc, self.rc], dim=1)
        d2, r = torch.split(self.act(self.c2(r)), [self.dc, self.rc], dim=1)
        d3, r = torch.split(self.act(self.c3(r)), [self.dc, self.rc], dim=1)
        d4 = self.c4(r)
        return self.c5(self.cca(torch.cat([d1, d2, d3, d4], dim=1))) + x


class IMDN(nn.Module):
    """Information Multi-Distillation Network.

    Args:
        scale: 2, 3 or 4 (any integer works architecturally).
        nf: channels (64).
        num_modules: IMDB blocks (6).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> IMDN(4, nf=16, num_modules=2)(torch.rand(1, 3, 5, 6)).shape
        torch.Size([1, 3, 20, 24])
    """

    def __init__(self, scale: int, nf: int = 64, num_modules: int = 6) -> None:
        super().__init__()
        self.scale = scale
        self.num_modules = num_modules
        self.fea_conv = _conv(3, nf, 3)
        for i in range(1, num_modules + 1):
            self.add_module(f"IMDB{i}", _IMDB(nf))
        self.c = nn.Sequential(_conv(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = _conv(nf, nf, 3)
        self.upsampler = nn.Sequential(_conv(nf, 3 * scale**2, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs = []
        h = fea
        for i in range(1, self.num_modules + 1):
            h = getattr(self, f"IMDB{i}")(h)
            outs.append(h)
        lr = self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea
        return finish(self, self.upsampler(lr))


register_sr_model(
    "imdn",
    SRModelEntry(
        IMDN,
        (2, 3, 4),
        "IMDN (6 distillation blocks, 64 channels)",
        reference="Zheng222/IMDN model/architecture.py",
        tiny={"nf": 16, "num_modules": 1},
    ),
)
