"""RRDBNet (ESRGAN / RRDB, Wang et al. 2018) in xinntao's key layouts.

The module uses the ESRGAN-repository ("new") names: ``conv_first``,
``RRDB_trunk.{i}.RDB{1,2,3}.conv{1..5}``, ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``,
``conv_last``. :func:`adapt_rrdb_keys` also accepts the old architecture's sequential names
(``model.0``, ``model.1.sub.{i}.RDB{k}.conv{j}.0``, ``model.1.sub.{nb}``, ``model.3/6/8/10``,
the original ``RRDB_ESRGAN_x4_old_arch.pth``) and BasicSR's names (``conv_body``,
``body.{i}.rdb{k}``, ``conv_up1/2``, ``conv_hr``). RRDB (PSNR-trained) and ESRGAN (GAN-trained)
share the architecture; x4 only, as released. Inputs in ``[0, 1]``.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from advsr.errors import InputError
from advsr.models.sr.common import finish
from advsr.models.sr.zoo import SRModelEntry, register_sr_model

__all__ = ["RRDBNet", "adapt_rrdb_keys"]


class _RDB(nn.Module):
    """Residual dense block with 5 convs (growth ``gc``), residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, dim=1))))
        return self.conv5(torch.cat(feats, dim=1)) * 0.2 + x


class _RRDB(nn.Module):
    """Three dense blocks with a residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.RDB1 = _RDB(nf, gc)
        self.RDB2 = _RDB(nf, gc)
        self.RDB3 = _RDB(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """Residual-in-residual dense block network (x4: two nearest-upsample + conv stages).

    Args:
        scale: must be 4 (the released architecture).
        nf: channels (64).
        nb: RRDB blocks (23).
        gc: growth channels (32).

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, 4h, 4w)``.

    Example:
        >>> RRDBNet(4, nf=8, nb=1, gc=4)(torch.rand(1, 3, 5, 6)).shape
        torch.Size([1, 3, 20, 24])
    """

    def __init__(self, scale: int = 4, nf: int = 64, nb: int = 23, gc: int = 32) -> None:
        super().__init__()
        if scale != 4:
            raise InputError(f"RRDBNet is released for x4 only, not x{scale}")
        self.scale = scale
        self.nb = nb
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[_RRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2.0, mode="nearest")))
        fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2.0, mode="nearest")))
        return finish(self, self.conv_last(self.lrelu(self.HRconv(fea))))


_OLD_TAIL = {
    "model.0": "conv_first",
    "model.3": "upconv1",
    "model.6": "upconv2",
    "model.8": "HRconv",
    "model.10": "conv_last",
}
_BASICSR = {
    "conv_body": "trunk_conv",
    "conv_up1": "upconv1",
    "conv_up2": "upconv2",
    "conv_hr": "HRconv",
}


def adapt_rrdb_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old-architecture or BasicSR RRDBNet keys to the ESRGAN names (others unchanged).

    Shape:
        state_dict -> state_dict (same tensors).
    """
    if any(k.startswith("model.1.sub.") for k in sd):
        subs = [int(m.group(1)) for k in sd if (m := re.match(r"model\.1\.sub\.(\d+)\.", k))]
        trunk = max(subs)  # the last sequential entry is the trunk conv
        out = {}
        for k, v in sd.items():
            m = re.match(r"model\.1\.sub\.(\d+)\.(.*)$", k)
            if m and int(m.group(1)) == trunk:
                out[f"trunk_conv.{m.group(2)}"] = v
            elif m:
                out[f"RRDB_trunk.{m.group(1)}.{m.group(2).replace('.0.', '.')}"] = v
            else:
                head, _, leaf = k.rpartition(".")
                out[f"{_OLD_TAIL.get(head, head)}.{leaf}"] = v
        return out
    if any(k.startswith("conv_body.") for k in sd):
        out = {}
        for k, v in sd.items():
            head, _, rest = k.partition(".")
            if head == "body":
                rest = re.sub(r"rdb(\d)", r"RDB\1", rest)
                out[f"RRDB_trunk.{rest}"] = v
            else:
                out[f"{_BASICSR.get(head, head)}.{rest}"] = v
        return out
    return sd


register_sr_model(
    "rrdb",
    SRModelEntry(
        RRDBNet,
        (4,),
        "RRDBNet, PSNR-trained (ESRGAN generator arch)",
        adapt=adapt_rrdb_keys,
        reference="xinntao/ESRGAN RRDBNet_arch.py",
        tiny={"nf": 8, "nb": 1, "gc": 4},
    ),
)
register_sr_model(
    "esrgan",
    SRModelEntry(
        RRDBNet,
        (4,),
        "ESRGAN generator (RRDBNet, GAN-trained weights)",
        adapt=adapt_rrdb_keys,
        reference="xinntao/ESRGAN RRDBNet_arch.py",
        tiny={"nf": 8, "nb": 1, "gc": 4},
    ),
)
