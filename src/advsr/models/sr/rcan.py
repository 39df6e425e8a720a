"""RCAN (Zhang et al. 2018) in the yulunzhang/RCAN key layout.

Keys: ``sub_mean``/``add_mean``, ``head.0``, ``body.{g}.body.{b}.body.{0,2}`` (RCAB convs),
``body.{g}.body.{b}.body.3.conv_du.{0,2}`` (channel attention), ``body.{g}.body.{n_resblocks}``
(group tail conv), ``body.{n_resgroups}`` (trunk tail conv), ``tail.0`` (upsampler),
``tail.1``. Works on ``[0, 255]`` inside (``rgb_range=255``).
"""

from __future__ import annotations

import torch
from torch import nn

from advsr.models.sr.common import EDSRMeanShift, finish, pixel_shuffle_upsampler
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["RCAN"]


class CALayer(nn.Module):
    """Channel attention: global average pool, 1x1 down, ReLU, 1x1 up, sigmoid, rescale."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block: conv-ReLU-conv-CA plus the input."""

    def __init__(self, n_feats: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            CALayer(n_feats, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a conv, with a long skip."""

    def __init__(self, n_feats: int, reduction: int, n_resblocks: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [RCAB(n_feats, reduction) for _ in range(n_resblocks)]
        blocks.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(nn.Module):
    """Residual Channel Attention Network.

    Args:
        scale: 2, 3, 4 or 8.
        n_resgroups: residual groups (10).
        n_resblocks: RCABs per group (20).
        n_feats: channels (64).
        reduction: channel-attention reduction (16).
        rgb_range: value range of the weights (255).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.

    Example:
        >>> RCAN(2, n_resgroups=1, n_resblocks=1, n_feats=16)(torch.rand(1, 3, 5, 5)).shape
        torch.Size([1, 3, 10, 10])
    """

    def __init__(
        self,
        scale: int,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.rgb_range = rgb_range
        self.sub_mean = EDSRMeanShift(rgb_range, sign=-1)
        self.add_mean = EDSRMeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        groups: list[nn.Module] = [
            ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)
        ]
        groups.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.body = nn.Sequential(*groups)
        self.tail = nn.Sequential(
            pixel_shuffle_upsampler(n_feats, scale), nn.Conv2d(n_feats, 3, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.rgb_range))
        x = x + self.body(x)
        x = self.add_mean(self.tail(x))
        return finish(self, x / self.rgb_range)


register_sr_model(
    "rcan",
    SRModelEntry(
        RCAN,
        (2, 3, 4, 8),
        "RCAN (10 groups x 20 RCABs, 64 channels)",
        reference="yulunzhang/RCAN RCAN_TrainCode/code/model/rcan.py",
        tiny={"n_resgroups": 1, "n_resblocks": 1, "n_feats": 16},
    ),
)
