"""ImageNet-1k classes and the standard evaluation preprocessing.

The 1000 ILSVRC-2012 classes are shipped as ``imagenet_classes.tsv`` (wnid and WordNet
lemmas, in the standard sorted-wnid order: the index of a line is the logit index of every
ImageNet classifier trained with that order, EfficientNet-Lite0 included).

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

import re
from functools import cache
from importlib import resources

import torch

from advsr.imaging.resize import imresize

__all__ = [
    "CROP_FRACTION",
    "IMAGENET_WNIDS",
    "imagenet_names",
    "resize_center_crop",
    "wnid_label",
]

CROP_FRACTION = 0.875
"""The evaluation crop as a fraction of the resized shorter side (224 of 256)."""

_WNID = re.compile(r"^(n\d{8})(?:$|[_.\-])")


def _read_classes() -> list[tuple[str, str]]:
    text = resources.files("advsr.data").joinpath("imagenet_classes.tsv").read_text("utf-8")
    rows = [line.split("\t", 1) for line in text.splitlines() if line and line[0] != "#"]
    return [(w, lemmas) for w, lemmas in rows]


IMAGENET_WNIDS: tuple[str, ...] = tuple(w for w, _ in _read_classes())
"""The 1000 wnids in logit order (sorted)."""

_INDEX = {w: i for i, w in enumerate(IMAGENET_WNIDS)}


@cache
def imagenet_names() -> tuple[str, ...]:
    """One readable name per class (the first WordNet lemma), in logit order."""
    return tuple(lemmas.split(",")[0].strip() for _, lemmas in _read_classes())


def wnid_label(name: str) -> int | None:
    """The class index of a folder or file name that is, or starts with, an ImageNet wnid
    (``n01440764``, ``n01440764_10026.JPEG``); None otherwise."""
    m = _WNID.match(name)
    return _INDEX.get(m.group(1)) if m else None


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
