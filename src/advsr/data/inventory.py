"""The files that make up a dataset, for its identity by content.

Example:
    >>> kind, files = data_files("samples")
    >>> kind, len(files) == 8
    ('samples', True)
"""

from __future__ import annotations

from pathlib import Path

from advsr.errors import DatasetError

__all__ = ["data_files"]


def data_files(spec: str) -> tuple[str, list[tuple[str, Path]]]:
    """The files that make up a dataset, as ``(relative name, path)`` pairs, and its kind.

    Registered names resolve to the files they read (the ``samples`` photos inside the
    scikit-image / scikit-learn wheels, scikit-learn's digits table; a benchmark set, of
    kind ``folder``, to the images its layout reads, named relative to its folder:
    :meth:`advsr.data.benchmarks.BenchmarkSet.files`); a path to itself (a file) or to
    every file below it (a folder, recursively, hidden files skipped).

    Raises:
        DatasetNotFoundError: a benchmark set not under ``$ADVSR_DATA``.
        DatasetError: neither a registered name nor an existing path.
    """
    from advsr.data import DATASETS, registered_name
    from advsr.data.samples import sample_paths

    if spec == "samples":
        return "samples", sorted(sample_paths().items())
    if spec in ("digits", "digits-train", "digits-test"):
        import sklearn.datasets

        root = Path(sklearn.datasets.__file__).parent / "data"
        return spec, [("digits.csv.gz", root / "digits.csv.gz")]
    name = registered_name(spec)
    if name is not None:
        entry = DATASETS.get(name)
        return entry.files() if entry.files is not None else (spec, [])
    p = Path(spec)
    if p.is_file():
        return "file", [(p.name, p)]
    if p.is_dir():
        files = sorted(
            (f.relative_to(p).as_posix(), f)
            for f in p.rglob("*")
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
        )
        return "folder", files
    raise DatasetError(f"unknown dataset {spec!r}: not a registered name nor an existing path")
