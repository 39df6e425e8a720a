"""The SR dataset contract: a sequence of named (LR, HR) pairs, loaded lazily."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from advsr.data.conversions import Conversion, GrayPolicy, NoticeUse, conversion_notices

__all__ = ["SRDataset", "SRPair", "image_size", "unique_names"]


@dataclass(frozen=True)
class SRPair:
    """One SR test item.

    Attributes:
        name: the image's name (its file stem, or its relative path where stems collide),
            unique within the dataset.
        lr: low-resolution image, ``(1, 3, h, w)``.
        hr: high-resolution image, mod-cropped to the scale, ``(1, 3, s*h, s*w)``.
    """

    name: str
    lr: torch.Tensor
    hr: torch.Tensor


def pair_size(h: int, w: int, scale: int, hr_crop: int | None) -> tuple[int, int]:
    """The HR size of a pair made from an ``h x w`` image: centre-cropped to ``hr_crop``
    and cut to a multiple of ``scale``."""
    if hr_crop is not None:
        h, w = min(h, hr_crop), min(w, hr_crop)
    return h - h % scale, w - w % scale


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from an image header, without decoding the pixels (refused over
    :func:`advsr.io.max_pixels`)."""
    from advsr.io import image_header

    return image_header(path)


def unique_names(keys: list[str], stems: list[str]) -> list[str]:
    """Display names: the stem, or the key (a relative path) where two stems collide.

    Example:
        >>> unique_names(["a.png", "a.bmp", "b.png"], ["a", "a", "b"])
        ['a.png', 'a.bmp', 'b']
    """
    count: dict[str, int] = {}
    for s in stems:
        count[s] = count.get(s, 0) + 1
    return [k if count[s] > 1 else s for k, s in zip(keys, stems, strict=True)]


class SRDataset:
    """Base class of SR datasets: named pairs, validated eagerly, decoded lazily.

    Subclasses fill ``self._names`` (display names), ``self._keys`` (each item's identity
    in the dataset: its path relative to the dataset root, unique) and
    ``self._conversions`` (what reading each item's files converts, from their headers:
    :meth:`conversion_notices`) and implement :meth:`_load`. Construction checks
    everything that can be checked from file headers (existence, sizes against the scale),
    so a wrong folder or scale fails before any work starts.

    Attributes:
        name: how the dataset is called (registered name or path).
        scale: the SR factor.
        kind: ``"samples"``, ``"hr-folder"``, ``"paired-selfexsr"`` or ``"paired-basicsr"``.
    """

    kind = "base"
    lr_bits: int | None = 8
    """Bit depth LR images made from the HR are rounded to (``None``: float)."""
    lr_files = False
    """True where the LR images are files of their own (paired layouts)."""

    def __init__(self, name: str, scale: int) -> None:
        self.name = name
        self.scale = scale
        self._names: list[str] = []
        self._keys: list[str] = []
        self._conversions: list[Conversion] = []

    def hr_sizes(self) -> list[tuple[int, int]]:
        """Each HR image's size as its pairs will have it (centre crop and cut to a multiple
        of the scale applied), read from headers at construction; empty when unknown."""
        return list(getattr(self, "_hr_sizes", []))

    def names(self) -> list[str]:
        """Image names in dataset order."""
        return list(self._names)

    def keys(self) -> list[str]:
        """Each item's identity in the dataset (relative path; the name for named sets)."""
        return list(self._keys or self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index: int) -> SRPair:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._load(index % len(self))

    def conversion_notices(
        self, *, use: NoticeUse = "attack", gray: GrayPolicy = "rgb"
    ) -> list[str]:
        """One line per kind of file conversion (grayscale, alpha, 16-bit) this dataset's
        files need, naming the images (:mod:`advsr.data.conversions`); empty when none."""
        lr: int | Literal["files"] | None = "files" if self.lr_files else self.lr_bits
        return conversion_notices(
            self.name, self._names, self._conversions, use=use, gray=gray, lr_bits=lr
        )

    def _load(self, index: int) -> SRPair:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fingerprint_parts(self) -> list[object]:  # pragma: no cover - abstract
        raise NotImplementedError

    def identity(self) -> dict[str, object]:
        """What identifies this dataset's content for the result store.

        The fingerprint hashes the image names and file sizes (and the options that change
        the pixels), so a store cell is invalidated when the files change.
        """
        blob = json.dumps([self.kind, self.scale, *self._fingerprint_parts()], sort_keys=True)
        return {
            "name": self.name,
            "kind": self.kind,
            "fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:16],
        }
