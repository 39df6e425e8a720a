"""What the cells of one run share: content hashes, datasets, models, defenses (cached).

A :class:`Context` is created per run (per command). Planning a cell resolves its identity
through it (content hashes of weight files, model files and datasets, each computed once per
file and run) and running a cell gets its datasets and models from it, so a grid of forty
cells over one model and one dataset loads each once.

Example:
    >>> ctx = Context()
    >>> ctx.data_identity("samples")["name"]
    'samples'
    >>> ctx.sr_dataset("samples", 2, 32) is ctx.sr_dataset("samples", 2, 32)
    True
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from advsr.devices import resolve_device
from advsr.errors import DatasetError, ModelLoadError

__all__ = ["Context", "data_files"]

T = TypeVar("T")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_files(spec: str) -> tuple[str, list[tuple[str, Path]]]:
    """The files that make up a dataset, as ``(relative name, path)`` pairs, and its kind.

    Registered names resolve to the files they read (the ``samples`` photos inside the
    scikit-image / scikit-learn wheels, scikit-learn's digits table); a path to itself (a
    file) or to every file below it (a folder, recursively, hidden files skipped).

    Raises:
        DatasetError: neither a registered name nor an existing path.
    """
    from advsr.data import DATASETS
    from advsr.data.samples import sample_paths

    if spec == "samples":
        return "samples", sorted(sample_paths().items())
    if spec in ("digits", "digits-train", "digits-test"):
        import sklearn.datasets

        root = Path(sklearn.datasets.__file__).parent / "data"
        return spec, [("digits.csv.gz", root / "digits.csv.gz")]
    if spec in DATASETS:
        return spec, []
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


class Context:
    """Caches shared by the cells of one run (see the module docstring).

    Args:
        memo_bytes: memory budget of :meth:`memo` entries that are tensors (e.g. the
            non-adaptive adversarial batches shared by the defenses of a table).
    """

    def __init__(self, memo_bytes: int = 1 << 30) -> None:
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._cache: dict[Hashable, Any] = {}
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()
        self._memo_bytes = memo_bytes

    # -- identities ----------------------------------------------------------------------
    def file_hash(self, path: str | Path) -> str:
        """SHA-256 of a file's bytes, computed once per (path, size, mtime) in this run."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError:
            raise ModelLoadError(f"no such file: {p}") from None
        if not p.is_file():
            raise ModelLoadError(f"not a regular file: {p}")
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = _sha256(p)
        return self._hashes[key]

    def weights_identity(self, value: Any) -> Any:
        """Weight files (a path, a list or a name -> path dict) replaced by their hashes."""
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: self.weights_identity(v) for k, v in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [self.weights_identity(v) for v in value]
        return self.file_hash(value)

    def model_identity(self, value: Any) -> Any:
        """A zoo name stays a name; a model file becomes ``{"file": sha256}``."""
        if isinstance(value, list | tuple):
            return [self.model_identity(v) for v in value]
        if isinstance(value, str) and Path(value).is_file():
            return {"file": self.file_hash(value)}
        return value

    def data_identity(self, spec: str) -> dict[str, Any]:
        """A dataset by content: its kind and the hash of every file's name and bytes."""
        key = ("data-identity", spec)
        if key not in self._cache:
            kind, files = data_files(spec)
            h = hashlib.sha256()
            for name, path in files:
                h.update(f"{name}\0{self.file_hash(path)}\n".encode())
            out: dict[str, Any] = {"kind": kind, "files": len(files), "sha256": h.hexdigest()}
            if kind not in ("file", "folder"):
                out["name"] = spec
            self._cache[key] = out
        return dict(self._cache[key])

    # -- resources -----------------------------------------------------------------------
    def cached(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per key for this run."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """Like :meth:`cached`, for large tensors: least recently used ones are dropped
        beyond the memory budget."""
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = build()
        self._memo[key] = value

        def size(v: Any) -> int:
            if isinstance(v, torch.Tensor):
                return v.numel() * v.element_size()
            if isinstance(v, tuple | list):
                return sum(size(x) for x in v)
            if isinstance(v, dict):
                return sum(size(x) for x in v.values())
            return sum(size(x) for x in getattr(v, "__dict__", {}).values())

        used = sum(size(v) for v in self._memo.values())
        while used > self._memo_bytes and len(self._memo) > 1:
            _, old = self._memo.popitem(last=False)
            used -= size(old)
        return value

    def device(self, spec: str) -> torch.device:
        """The device of a cell (``auto`` picks CUDA when present)."""
        return resolve_device(spec)

    def sr_dataset(self, spec: str, scale: int, hr_crop: int | None) -> Any:
        """An SR dataset (validated from headers when opened; images decoded lazily)."""
        from advsr.data import open_dataset

        return self.cached(
            ("sr-data", spec, scale, hr_crop), lambda: open_dataset(spec, scale, hr_crop=hr_crop)
        )

    def labelled(
        self,
        spec: str,
        pattern: str | None,
        per_class: int | None,
        model: nn.Module | None = None,
    ) -> Any:
        """A labelled dataset, loaded once, in the view ``model`` takes (ImageNet
        classifiers: resized and centre-cropped to their ``load_size``)."""
        from advsr.data.labelled import open_labelled

        size = getattr(model, "load_size", None)
        return self.cached(
            ("labelled", spec, pattern, per_class, size),
            lambda: open_labelled(spec, pattern=pattern, per_class=per_class, size=size),
        )

    def sr_model(
        self, name: str, scale: int, weights: str | None, device: torch.device
    ) -> nn.Module:
        """A zoo SR model or a model file, in eval mode on ``device``."""
        from advsr.models.sr import create_sr_model

        return self.cached(
            ("sr-model", name, scale, weights, str(device)),
            lambda: create_sr_model(name, scale, weights).to(device).eval(),
        )

    def classifier(self, name: str, weights: str | None, device: torch.device) -> nn.Module:
        """A zoo classifier or a model file, in eval mode on ``device``."""
        from advsr.models.classifiers import create_classifier

        return self.cached(
            ("classifier", name, weights, str(device)),
            lambda: create_classifier(name, weights).to(device).eval(),
        )

    def compiled(self, model: nn.Module) -> nn.Module:
        """``model`` under ``torch.compile`` (falling back to eager), one per model."""
        from advsr.models.compiled import compile_model

        return self.cached(("compiled", id(model)), lambda: compile_model(model))

    def defense(self, spec: str, device: torch.device) -> Any:
        """A defense built from its spec, once per run and device."""
        from advsr.defenses.registry import canonical_spec, create_defense

        return self.cached(
            ("defense", canonical_spec(spec), str(device)),
            lambda: create_defense(spec).to(device).eval(),
        )
