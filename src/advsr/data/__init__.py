"""Datasets: named SR test sets (``samples``) and folders (HR-only or paired LR/HR).

Use :func:`open_dataset` with a registered name or a path, as the CLI does::

    >>> from advsr.data import open_dataset
    >>> ds = open_dataset("samples", scale=4, hr_crop=64)
    >>> ds.names()[:3]
    ['astronaut', 'chelsea', 'coffee']
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advsr.checks import check_positive_int, check_scale
from advsr.data.base import SRDataset, SRPair
from advsr.data.conversions import GrayPolicy, NoticeUse
from advsr.data.folders import HRFolderDataset, PairedFolderDataset, make_hr_pair, open_folder
from advsr.data.samples import SAMPLE_FILES, SamplesDataset
from advsr.errors import DatasetError, warn
from advsr.registry import Registry

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "HRFolderDataset",
    "PairedFolderDataset",
    "SRDataset",
    "SRPair",
    "SamplesDataset",
    "make_hr_pair",
    "open_dataset",
]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: a builder ``(scale, hr_crop, lr_bits) -> SRDataset``."""

    build: Callable[[int, int | None, int | None], SRDataset]
    description: str
    size: int


DATASETS: Registry[DatasetEntry] = Registry("dataset")
DATASETS.register(
    "samples",
    DatasetEntry(
        build=lambda s, c, b: SamplesDataset(s, hr_crop=c, lr_bits=b),
        description="natural RGB photos shipped in scikit-image and scikit-learn wheels "
        "(LR by MATLAB bicubic)",
        size=len(SAMPLE_FILES),
    ),
)


def open_dataset(
    spec: str | Path,
    scale: int,
    *,
    hr_crop: int | None = None,
    lr_bits: int | None = 8,
    notify: bool = True,
    use: NoticeUse = "attack",
    gray: GrayPolicy = "rgb",
) -> SRDataset:
    """Open an SR dataset by registered name (``samples``) or by path.

    Args:
        spec: a name from :data:`DATASETS` or a folder / image path (layout detected, see
            :mod:`advsr.data.folders`).
        scale: SR factor (integer >= 1).
        hr_crop: centre-crop HR images to at most this many pixels a side (HR-only sets).
        lr_bits: bit depth generated LR images are rounded to (``None``: float).
        notify: warn once (one :class:`~advsr.errors.AdvsrWarning` line per kind) about the
            grayscale, alpha and 16-bit files it holds (:mod:`advsr.data.conversions`); the
            notices stay available from :meth:`SRDataset.conversion_notices`.
        use: who reads the dataset (what the notices say follows from it).
        gray: the gray policy in force, for the notices.

    Raises:
        DatasetError: unknown name and no such path, or an inconsistent folder.
        InputError: bad scale or crop.
    """
    check_scale(scale)
    if hr_crop is not None:
        check_positive_int(hr_crop, "hr_crop")
    ds = _open(spec, scale, hr_crop, lr_bits)
    if notify:
        for line in ds.conversion_notices(use=use, gray=gray):
            warn(line)
    return ds


def _open(spec: str | Path, scale: int, hr_crop: int | None, lr_bits: int | None) -> SRDataset:
    key = str(spec)
    if key in DATASETS:
        return DATASETS.get(key).build(scale, hr_crop, lr_bits)
    p = Path(key)
    if not p.exists():
        close = difflib.get_close_matches(key.lower(), DATASETS.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(
            f"unknown dataset {key!r}{hint}: not a registered name "
            f"({', '.join(DATASETS.names())}) nor an existing path"
        )
    return open_folder(p, scale, hr_crop=hr_crop, lr_bits=lr_bits)
