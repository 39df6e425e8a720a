"""EDSR and EDSR-baseline (Lim et al. 2017) in the sanghyun-son/EDSR-PyTorch key layout.

Keys: ``sub_mean``/``add_mean`` (frozen 1x1 convs), ``head.0``, ``body.{i}.body.{0,2}``
(residual blocks conv-ReLU-conv scaled by ``res_scale``), ``body.{n}`` (last body conv),
``tail.0`` (upsampler), ``tail.1`` (output conv). The official models work on ``[0, 255]``
(``rgb_range=255``); this module takes ``[0, 1]`` and scales inside.
"""

from __future__ import annotations

import torch
from torch import nn

from advsr.models.sr.common import EDSRMeanShift, finish, pixel_shuffle_upsampler
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["EDSR"]


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus the input."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """Enhanced Deep SR network.

    Args:
        scale: 2, 3, 4 or 8.
        n_resblocks: residual blocks (32 for EDSR, 16 for EDSR-baseline).
        n_feats: channels (256 for EDSR, 64 for EDSR-baseline).
        res_scale: residual scaling (0.1 for EDSR, 1 for the baseline).
        rgb_range: value range the weights were trained on (255 for the official files).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> EDSR(2, n_resblocks=2, n_feats=8)(torch.rand(1, 3, 5, 7)).shape
        torch.Size([1, 3, 10, 14])
    """

    def __init__(
        self,
        scale: int,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.rgb_range = rgb_range
        self.sub_mean = EDSRMeanShift(rgb_range, sign=-1)
        self.add_mean = EDSRMeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        blocks: list[nn.Module] = [ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        blocks.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.body = nn.Sequential(*blocks)
        self.tail = nn.Sequential(
            pixel_shuffle_upsampler(n_feats, scale), nn.Conv2d(n_feats, 3, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x * self.rgb_range)
        x = self.head(x)
        x = x + self.body(x)
        x = self.add_mean(self.tail(x))
        return finish(self, x / self.rgb_range)


register_sr_model(
    "edsr",
    SRModelEntry(
        EDSR,
        (2, 3, 4),
        "EDSR (32 blocks, 256 channels, res_scale 0.1)",
        {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1},
        reference="sanghyun-son/EDSR-PyTorch src/model/edsr.py",
        tiny={"n_resblocks": 1, "n_feats": 8},
    ),
)
register_sr_model(
    "edsr-baseline",
    SRModelEntry(
        EDSR,
        (2, 3, 4),
        "EDSR-baseline (16 blocks, 64 channels)",
        {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
        reference="sanghyun-son/EDSR-PyTorch src/model/edsr.py",
        tiny={"n_resblocks": 1, "n_feats": 8},
    ),
)
register_sr_model(
    "demo-edsr",
    SRModelEntry(
        EDSR,
        (2, 4),
        "bundled: small EDSR-baseline shape trained on samples (demo)",
        {"n_resblocks": 4, "n_feats": 32, "res_scale": 1.0},
        bundled={2: "demo-edsr_x2.safetensors", 4: "demo-edsr_x4.safetensors"},
        reference="advsr train-sr (see models/weights/README.md)",
        tiny={"n_resblocks": 1, "n_feats": 8},
    ),
)
