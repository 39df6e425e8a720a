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

from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from advsr.devices import resolve_device

if TYPE_CHECKING:
    from advsr.data.conversions import GrayPolicy, NoticeUse

__all__ = ["Context"]

T = TypeVar("T")


class Context:
    """Caches shared by the cells of one run (see the module docstring).

    Args:
        memo_bytes: memory budget of :meth:`memo` entries that are tensors (e.g. the
            non-adaptive adversarial batches shared by the defenses of a table).
    """

    def __init__(self, memo_bytes: int = 1 << 30) -> None:
        self._cache: dict[Hashable, Any] = {}
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()
        self._memo_bytes = memo_bytes

    # -- identities ----------------------------------------------------------------------
    def file_hash(self, path: str | Path) -> str:
        """SHA-256 of a file's bytes, computed once per (path, size, mtime)."""
        from advsr.files import file_sha256

        return file_sha256(path)

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
        from advsr.files import data_digest

        key = ("data-identity", spec)
        if key not in self._cache:
            self._cache[key] = data_digest(spec)
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

    def sr_dataset(
        self,
        spec: str,
        scale: int,
        hr_crop: int | None,
        *,
        use: NoticeUse = "attack",
        gray: GrayPolicy = "rgb",
    ) -> Any:
        """An SR dataset (validated from headers when opened; images decoded lazily).

        Its grayscale, alpha and 16-bit files are named in one warning line per kind, once
        per run and dataset (not per scale or cell; :mod:`advsr.data.conversions`): ``use``
        and ``gray`` say what follows for the caller.
        """
        from advsr.data import open_dataset

        ds = self.cached(
            ("sr-data", spec, scale, hr_crop),
            lambda: open_dataset(spec, scale, hr_crop=hr_crop, notify=False),
        )
        self._notify(("sr-notices", spec, use, gray), ds.conversion_notices(use=use, gray=gray))
        return ds

    def _notify(self, key: Hashable, lines: list[str] | tuple[str, ...]) -> None:
        """Warn ``lines`` the first time ``key`` is seen in this run."""
        from advsr.errors import warn

        if key not in self._cache:
            self._cache[key] = True
            for line in lines:
                warn(line)

    def labelled(
        self,
        spec: str,
        pattern: str | None,
        per_class: int | None,
        model: nn.Module | None = None,
    ) -> Any:
        """A labelled dataset, loaded once, in the view ``model`` takes (ImageNet
        classifiers: resized and centre-cropped to their ``load_size``); its grayscale,
        alpha and 16-bit files are named in one warning line per kind, once per run."""
        from advsr.data.labelled import open_labelled

        size = getattr(model, "load_size", None)
        data = self.cached(
            ("labelled", spec, pattern, per_class, size),
            lambda: open_labelled(
                spec, pattern=pattern, per_class=per_class, size=size, notify=False
            ),
        )
        self._notify(("labelled-notices", spec, pattern, per_class), data.notices)
        return data

    def sr_model(
        self,
        name: str,
        scale: int,
        weights: str | None,
        device: torch.device,
        init_seed: int | None = None,
    ) -> nn.Module:
        """A zoo SR model or a model file, in eval mode on ``device``; one that needs
        weights and has none is refused unless ``init_seed`` asks for it untrained."""
        from advsr.models.sr import create_sr_model

        def build() -> nn.Module:
            m = create_sr_model(name, scale, weights, init_seed=init_seed, strict=True)
            return m.to(device).eval()

        return self.cached(("sr-model", name, scale, weights, init_seed, str(device)), build)

    def classifier(
        self, name: str, weights: str | None, device: torch.device, init_seed: int | None = None
    ) -> nn.Module:
        """A zoo classifier or a model file, in eval mode on ``device`` (refused without
        weights unless ``init_seed`` asks for it untrained)."""
        from advsr.models.classifiers import create_classifier

        def build() -> nn.Module:
            m = create_classifier(name, weights, init_seed=init_seed, strict=True)
            return m.to(device).eval()

        return self.cached(("classifier", name, weights, init_seed, str(device)), build)

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
