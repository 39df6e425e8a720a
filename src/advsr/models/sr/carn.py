"""CARN and CARN-M (Ahn et al. 2018) in the nmhkahn/CARN-pytorch key layout.

One network holds the upsamplers of x2, x3 and x4 (``upsample.up2/up3/up4``, the official
``multi_scale=True`` files); the zoo model runs the one of its ``scale``. CARN-M uses efficient
residual blocks with group convolution (``group=4``) and shares one block's weights across the
three cascade steps (so its checkpoint holds only ``b{i}.b1``). Inputs in ``[0, 1]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advsr.errors import InputError
from advsr.models.sr.common import ShifterMeanShift, finish
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["CARN"]


class _Basic(nn.Module):
    """conv (1x1 here) + ReLU; key ``body.0``."""

    def __init__(self, cin: int, cout: int, k: int = 1, pad: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, k, 1, pad), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _Residual(nn.Module):
    """CARN residual block: ReLU(conv-ReLU-conv(x) + x); keys ``body.{0,2}``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class _EResidual(nn.Module):
    """CARN-M efficient block: group convs then 1x1; keys ``body.{0,2,4}``."""

    def __init__(self, c: int, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class _Cascade(nn.Module):
    """Three residual units whose outputs are concatenated and fused by 1x1 convs."""

    def __init__(self, c: int, mobile: bool, group: int) -> None:
        super().__init__()
        self.mobile = mobile
        if mobile:  # one block applied three times (weights shared)
            self.b1: nn.Module = _EResidual(c, group)
        else:
            self.b1 = _Residual(c)
            self.b2 = _Residual(c)
            self.b3 = _Residual(c)
        self.c1 = _Basic(2 * c, c)
        self.c2 = _Basic(3 * c, c)
        self.c3 = _Basic(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = (self.b1, self.b1, self.b1) if self.mobile else (self.b1, self.b2, self.b3)
        return _cascade(x, blocks, (self.c1, self.c2, self.c3))


def _cascade(
    x: torch.Tensor, blocks: tuple[nn.Module, ...], fuse: tuple[nn.Module, ...]
) -> torch.Tensor:
    cat = out = x
    for b, c in zip(blocks, fuse, strict=True):
        cat = torch.cat([cat, b(out)], dim=1)
        out = c(cat)
    return out


class _Up(nn.Module):
    """(conv to 4C, ReLU, PixelShuffle(2)) x log2(s) or (conv 9C, ReLU, PS(3)); key ``body``."""

    def __init__(self, c: int, scale: int, group: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if scale in (2, 4, 8):
            for _ in range(int(math.log2(scale))):
                layers += [
                    nn.Conv2d(c, 4 * c, 3, 1, 1, groups=group),
                    nn.ReLU(inplace=True),
                    nn.PixelShuffle(2),
                ]
        elif scale == 3:
            layers += [
                nn.Conv2d(c, 9 * c, 3, 1, 1, groups=group),
                nn.ReLU(inplace=True),
                nn.PixelShuffle(3),
            ]
        else:
            raise InputError(f"CARN supports scales 2, 3, 4 and 8, not {scale}")
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _Upsample(nn.Module):
    def __init__(self, c: int, scale: int, multi_scale: bool, group: int) -> None:
        super().__init__()
        self.multi_scale = multi_scale
        if multi_scale:
            self.up2 = _Up(c, 2, group)
            self.up3 = _Up(c, 3, group)
            self.up4 = _Up(c, 4, group)
        else:
            self.up = _Up(c, scale, group)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if not self.multi_scale:
            return self.up(x)
        up = {2: self.up2, 3: self.up3, 4: self.up4}.get(scale)
        if up is None:
            raise InputError(f"multi-scale CARN has x2, x3 and x4 upsamplers, not x{scale}")
        return up(x)


class CARN(nn.Module):
    """Cascading Residual Network; ``mobile=True`` gives CARN-M.

    Args:
        scale: the scale this model runs at.
        mobile: CARN-M (efficient residual blocks, shared weights, group convolution).
        n_feats: channels (64 in the papers).
        group: groups of CARN-M's convolutions and upsampler (4); CARN uses 1.
        multi_scale: hold x2/x3/x4 upsamplers (the official files) or only ``scale``'s.

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> CARN(3, mobile=True, n_feats=16)(torch.rand(1, 3, 5, 6)).shape
        torch.Size([1, 3, 15, 18])
    """

    def __init__(
        self,
        scale: int,
        mobile: bool = False,
        n_feats: int = 64,
        group: int | None = None,
        multi_scale: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        g = (4 if mobile else 1) if group is None else group
        self.sub_mean = ShifterMeanShift(sub=True)
        self.add_mean = ShifterMeanShift(sub=False)
        self.entry = nn.Conv2d(3, n_feats, 3, 1, 1)
        self.b1 = _Cascade(n_feats, mobile, g)
        self.b2 = _Cascade(n_feats, mobile, g)
        self.b3 = _Cascade(n_feats, mobile, g)
        self.c1 = _Basic(2 * n_feats, n_feats)
        self.c2 = _Basic(3 * n_feats, n_feats)
        self.c3 = _Basic(4 * n_feats, n_feats)
        self.upsample = _Upsample(n_feats, scale, multi_scale, g)
        self.exit = nn.Conv2d(n_feats, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(self.sub_mean(x))
        x = _cascade(x, (self.b1, self.b2, self.b3), (self.c1, self.c2, self.c3))
        x = self.add_mean(self.exit(self.upsample(x, self.scale)))
        return finish(self, x)


register_sr_model(
    "carn",
    SRModelEntry(
        CARN,
        (2, 3, 4),
        "CARN, multi-scale file (up2/up3/up4)",
        {"mobile": False},
        reference="nmhkahn/CARN-pytorch carn/model/carn.py",
        tiny={"n_feats": 8},
    ),
)
register_sr_model(
    "carn-m",
    SRModelEntry(
        CARN,
        (2, 3, 4),
        "CARN-M, group conv 4, multi-scale file",
        {"mobile": True},
        reference="nmhkahn/CARN-pytorch carn/model/carn_m.py",
        tiny={"n_feats": 8},
    ),
)
register_sr_model(
    "demo-carn-m",
    SRModelEntry(
        CARN,
        (2, 4),
        "bundled: small CARN-M shape trained on samples (demo)",
        {"mobile": True, "n_feats": 32, "multi_scale": False},
        bundled={2: "demo-carn-m_x2.safetensors", 4: "demo-carn-m_x4.safetensors"},
        reference="advsr train-sr (see models/weights/README.md)",
        tiny={"n_feats": 8},
    ),
)
