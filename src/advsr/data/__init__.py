"""Datasets: named SR test sets (``samples``; the benchmark sets ``Set5``, ``Set14``,
``B100``, ``Urban100``, ``Manga109``, ``DIV2K-valid`` found under ``$ADVSR_DATA``, see
:mod:`advsr.data.benchmarks`) and folders (HR-only or paired LR/HR).

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
from typing import Any

from advsr.checks import check_positive_int, check_scale
from advsr.data.base import SRDataset, SRPair
from advsr.data.benchmarks import BENCHMARK_SETS, DatasetNotFoundError, benchmark_set, path_instead
from advsr.data.conversions import GrayPolicy, NoticeUse
from advsr.data.folders import HRFolderDataset, PairedFolderDataset, make_hr_pair, open_folder
from advsr.data.samples import SAMPLE_FILES, SamplesDataset
from advsr.errors import DatasetError, warn
from advsr.registry import Registry

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "DatasetNotFoundError",
    "HRFolderDataset",
    "PairedFolderDataset",
    "SRDataset",
    "SRPair",
    "SamplesDataset",
    "make_hr_pair",
    "open_dataset",
    "registered_name",
]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: a builder ``(scale, hr_crop, lr_bits) -> SRDataset``.

    Attributes:
        files: its identity's kind and files, ``(kind, [(relative name, path)])``
            (:func:`advsr.data.inventory.data_files`); None: identified by its name.
        where: for listings, where its files are (columns of ``advsr list datasets``).
        title: how listings spell its name (the registry's key is lower-case).
    """

    build: Callable[[int, int | None, int | None], SRDataset]
    description: str
    size: int
    files: Callable[[], tuple[str, list[tuple[str, Path]]]] | None = None
    where: Callable[[], dict[str, Any]] | None = None
    title: str = ""


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
for _set in BENCHMARK_SETS:
    DATASETS.register(
        _set.name,
        DatasetEntry(
            build=_set.open,
            description=_set.description,
            size=_set.images,
            files=_set.files,
            where=_set.where,
            title=_set.name,
        ),
    )


def registered_name(spec: str) -> str | None:
    """The registered dataset ``spec`` names (a benchmark set's alias resolved), or None
    when it is a path: not a registered name, or a benchmark set's name that is not under
    ``$ADVSR_DATA`` but is an existing path (see :mod:`advsr.data.benchmarks`)."""
    bench = benchmark_set(spec)
    if bench is not None:
        return None if path_instead(spec) else bench.name
    return spec if spec in DATASETS else None


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
        spec: a name from :data:`DATASETS` (any case; a benchmark set's alias too) or a
            folder / image path (layout detected, see :mod:`advsr.data.folders`).
        scale: SR factor (integer >= 1).
        hr_crop: centre-crop HR images to at most this many pixels a side (HR-only sets).
        lr_bits: bit depth generated LR images are rounded to (``None``: float).
        notify: warn once (one :class:`~advsr.errors.AdvsrWarning` line per kind) about the
            grayscale, alpha and 16-bit files it holds (:mod:`advsr.data.conversions`); the
            notices stay available from :meth:`SRDataset.conversion_notices`.
        use: who reads the dataset (what the notices say follows from it).
        gray: the gray policy in force, for the notices.

    Raises:
        DatasetNotFoundError: a benchmark set not under ``$ADVSR_DATA`` (where it looked).
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
    name = registered_name(key)
    if name is not None:
        return DATASETS.get(name).build(scale, hr_crop, lr_bits)
    p = Path(key)
    if not p.exists():
        names = {n: DATASETS.get(n).title or n for n in DATASETS.names()}
        close = difflib.get_close_matches(key.lower(), list(names), n=1)
        hint = f" (did you mean {names[close[0]]!r}?)" if close else ""
        raise DatasetError(
            f"unknown dataset {key!r}{hint}: not a registered name "
            f"({', '.join(names.values())}) nor an existing path"
        )
    return open_folder(p, scale, hr_crop=hr_crop, lr_bits=lr_bits)
