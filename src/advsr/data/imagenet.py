"""ImageNet-1k classes and the standard evaluation preprocessing.

The 1000 ILSVRC-2012 classes (wnids, names, the label of a wnid-prefixed file) are
:mod:`advsr.labels`, shared with the classifiers; they are re-exported here.

Example:
    >>> IMAGENET_WNIDS[0], IMAGENET_WNIDS[243], imagenet_names()[243]
    ('n01440764', 'n02108422', 'bull mastiff')
    >>> wnid_label("n02108422_1234.JPEG"), wnid_label("cat.png")
    (243, None)
    >>> import torch
    >>> resize_center_crop(torch.rand(1, 3, 300, 400), 224).shape
    torch.Size([1, 3, 224, 224])
"""

from __future__ import annotations

import torch

from advsr.imaging.resize import imresize
from advsr.labels import IMAGENET_WNIDS, imagenet_names, wnid_label

__all__ = [
    "CROP_FRACTION",
    "IMAGENET_WNIDS",
    "imagenet_names",
    "resize_center_crop",
    "wnid_label",
]

CROP_FRACTION = 0.875
"""The evaluation crop as a fraction of the resized shorter side (224 of 256)."""


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The standard ImageNet evaluation view: the shorter side resized to
    ``round(size / 0.875)`` (256 for 224; antialiased bicubic), then the centred
    ``size x size`` crop.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, size, size)``.
    """
    h, w = x.shape[-2:]
    short = round(size / CROP_FRACTION)
    r = short / min(h, w)
    nh, nw = max(size, round(h * r)), max(size, round(w * r))
    y = imresize(x, size=(nh, nw)).clamp(0.0, 1.0)
    top, left = (nh - size) // 2, (nw - size) // 2
    return y[..., top : top + size, left : left + size]
