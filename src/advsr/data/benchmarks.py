"""Named SR benchmark sets: ``Set5``, ``Set14``, ``B100``, ``Urban100``, ``Manga109`` and
``DIV2K-valid``, found under ``$ADVSR_DATA`` in the layouts people have on disk.

``$ADVSR_DATA`` names the folder that holds the sets (several, separated by ``:``; ``;`` on
Windows). A set is the first of its folders found there (case-insensitive:
``Set5``, ``set5``; ``B100``, ``BSD100`` or ``BSDS100``; ``DIV2K-valid``, ``DIV2K_valid``, or
a ``DIV2K`` folder holding ``DIV2K_valid_HR``), in any layout of
:mod:`advsr.data.layouts`: SelfExSR's ``image_SRF_<s>/``, BasicSR's ``GTmod12/`` +
``LRbicx<s>/``, DIV2K's ``DIV2K_valid_HR/`` + ``DIV2K_valid_LR_bicubic/X<s>/`` (or ``HR/`` +
``LR_bicubic/X<s>/``), or HR images alone (LR by MATLAB bicubic). Names are
case-insensitive and ``BSD100`` / ``BSDS100`` are ``B100``.

A named set is opened exactly as its folder is (:func:`advsr.data.folders.open_folder`), and
is identified by content the same way: kind ``folder`` and the hash of the names (relative
to the set's folder) and bytes of the image files its layout reads, at every scale it has
(:meth:`BenchmarkSet.files`). So ``--data Set5`` and ``--data $ADVSR_DATA/Set5`` are the
same cell when that folder holds the set's images only (a path counts every file below it),
and two machines with the same files get the same cell ids wherever the files are.

A set that is not there is a :class:`DatasetNotFoundError` naming where it looked, unless
its name is also an existing path (``--data Set5`` run beside a ``Set5/`` folder): that
path is then opened, as before named sets existed.

Example:
    >>> [b.name for b in BENCHMARK_SETS]
    ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109', 'DIV2K-valid']
    >>> benchmark_set("bsd100").name
    'B100'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advsr.data.base import SRDataset
from advsr.data.folders import open_folder
from advsr.data.layouts import Layout, detect_layout
from advsr.errors import DatasetError

__all__ = [
    "BENCHMARK_SETS",
    "DATA_ENV",
    "BenchmarkSet",
    "DatasetNotFoundError",
    "benchmark_set",
    "data_roots",
    "path_instead",
]

DATA_ENV = "ADVSR_DATA"
"""The environment variable naming the folder(s) that hold the benchmark sets."""


class DatasetNotFoundError(DatasetError):
    """A named benchmark set is not under ``$ADVSR_DATA``; the message says where it
    looked."""


def data_roots() -> list[Path]:
    """The folders named by ``$ADVSR_DATA`` (none when it is unset or empty)."""
    value = os.environ.get(DATA_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def _child(root: Path, name: str) -> Path:
    """``root / name``, or the sub-folder of ``root`` whose name equals ``name`` but for
    case."""
    exact = root / name
    if exact.is_dir() or not root.is_dir():
        return exact
    try:
        entries = list(root.iterdir())
    except OSError:
        return exact
    return next((e for e in entries if e.name.lower() == name.lower() and e.is_dir()), exact)


@dataclass(frozen=True)
class BenchmarkSet:
    """One named set.

    Attributes:
        name: how it is called (``Set5``).
        images: how many images the set has.
        description: where it comes from.
        folders: the folder names it is looked for under, in order.
        aliases: other names it answers to.
        shared: folders that may hold other data too (``DIV2K``): one counts only when its
            layout's HR folder is ``hr_name``.
        hr_name: see ``shared``.
    """

    name: str
    images: int
    description: str
    folders: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    hr_name: str | None = None

    def candidates(self) -> list[tuple[Path, bool]]:
        """The folders it may be in, in the order looked at, each with whether it is a
        shared folder."""
        names = [(f, False) for f in self.folders] + [(f, True) for f in self.shared]
        return [(_child(root, f), shared) for root in data_roots() for f, shared in names]

    def locate(self) -> tuple[Path, Layout] | None:
        """The first candidate folder holding a layout (and that layout), or None."""
        for folder, shared in self.candidates():
            layout = detect_layout(folder)
            if layout is not None and (not shared or layout.hr.name == self.hr_name):
                return folder, layout
        return None

    def not_found(self) -> str:
        """Why it is not found: ``$ADVSR_DATA`` unset, or the folders looked in."""
        if not data_roots():
            return f"${DATA_ENV} is not set"
        looked = []
        for folder, _ in self.candidates():
            note = " (holds no images in a known layout)" if folder.is_dir() else ""
            looked.append(f"{folder}{note}")
        return f"looked in: {', '.join(looked)}"

    def find(self) -> tuple[Path, Layout]:
        """:meth:`locate`, refused when not found.

        Raises:
            DatasetNotFoundError: one line saying where it looked.
        """
        found = self.locate()
        if found is None:
            raise DatasetNotFoundError(
                f"dataset {self.name} not found ({self.not_found()}): set ${DATA_ENV} to the "
                f"folder that holds {self.folders[0]}/, or give --data its path"
            )
        return found

    def open(self, scale: int, hr_crop: int | None = None, lr_bits: int | None = 8) -> SRDataset:
        """Open the set at ``scale`` as its folder is opened (LR files of that scale where
        its layout has LR files), called by its name.

        Raises:
            DatasetNotFoundError: not under ``$ADVSR_DATA``.
            DatasetError: no LR files of that scale, an LR file that does not fit its HR.
        """
        folder, _ = self.find()
        try:
            ds = open_folder(folder, scale, hr_crop=hr_crop, lr_bits=lr_bits)
        except DatasetError as exc:
            raise DatasetError(f"{self.name}: {exc}") from None
        ds.name = self.name
        return ds

    def files(self) -> tuple[str, list[tuple[str, Path]]]:
        """Its identity's kind (``folder``, as a path's) and files: the images its layout
        reads at any scale, named relative to its folder (see the module docstring).

        Raises:
            DatasetNotFoundError: not under ``$ADVSR_DATA``.
        """
        _, layout = self.find()
        return "folder", layout.files()

    def where(self) -> dict[str, Any]:
        """For listings: its layout, the scales it has LR files for (``any``: LR made by
        bicubic) and the folder it was found in, or why it was not."""
        found = self.locate()
        if found is None:
            return {"layout": "", "scales": "", "where": f"not found ({self.not_found()})"}
        folder, layout = found
        scales: Any = sorted(layout.lr) if layout.name != "hr-folder" else "any"
        if layout.name == "selfexsr" and not layout.lr:
            scales = "the files' own"
        return {"layout": layout.name, "scales": scales, "where": str(folder)}


BENCHMARK_SETS: tuple[BenchmarkSet, ...] = (
    BenchmarkSet("Set5", 5, "Bevilacqua et al. 2012", ("Set5",)),
    BenchmarkSet("Set14", 14, "Zeyde et al. 2010", ("Set14",)),
    BenchmarkSet(
        "B100",
        100,
        "BSD300 test images, Martin et al. 2001 (or BSD100)",
        ("B100", "BSD100", "BSDS100"),
        aliases=("BSD100", "BSDS100"),
    ),
    BenchmarkSet("Urban100", 100, "Huang et al. 2015", ("Urban100",)),
    BenchmarkSet("Manga109", 109, "Matsui et al. 2017", ("Manga109",)),
    BenchmarkSet(
        "DIV2K-valid",
        100,
        "DIV2K 0801-0900, Agustsson & Timofte 2017",
        ("DIV2K-valid", "DIV2K_valid"),
        aliases=("DIV2K_valid",),
        shared=("DIV2K",),
        hr_name="DIV2K_valid_HR",
    ),
)
"""The named sets, in the order listings show them."""

_BY_NAME = {n.lower(): b for b in BENCHMARK_SETS for n in (b.name, *b.aliases)}


def benchmark_set(spec: str) -> BenchmarkSet | None:
    """The named set ``spec`` calls (by name or alias, any case), or None."""
    return _BY_NAME.get(str(spec).lower())


def path_instead(spec: str) -> bool:
    """Whether ``spec``, a set's name, is opened as a path: the set is not under
    ``$ADVSR_DATA`` and ``spec`` names an existing file or folder."""
    bench = benchmark_set(spec)
    return bench is not None and bench.locate() is None and Path(spec).exists()
