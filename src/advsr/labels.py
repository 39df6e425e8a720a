"""Class vocabularies: the 1000 ImageNet-1k (ILSVRC-2012) classes in logit order.

Shipped as ``imagenet_classes.tsv`` (wnid and WordNet lemmas, in the standard sorted-wnid
order: the index of a line is the logit index of every ImageNet classifier trained with
that order, EfficientNet-Lite0 included). A neutral module: the classifiers name their
outputs with it and the datasets label wnid-named files with it.

Example:
    >>> IMAGENET_WNIDS[0], IMAGENET_WNIDS[243], imagenet_names()[243]
    ('n01440764', 'n02108422', 'bull mastiff')
    >>> wnid_label("n02108422_1234.JPEG"), wnid_label("cat.png")
    (243, None)
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["IMAGENET_WNIDS", "imagenet_names", "wnid_label"]

_WNID = re.compile(r"^(n\d{8})(?:$|[_.\-])")


def _read_classes() -> list[tuple[str, str]]:
    text = resources.files("advsr").joinpath("imagenet_classes.tsv").read_text("utf-8")
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
