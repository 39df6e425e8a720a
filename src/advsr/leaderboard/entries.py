"""The models a leaderboard ranks: the default entries and the ones a user adds.

Every leaderboard holds bicubic and the bundled demo models (:data:`DEFAULT_ENTRIES`). A user
adds a zoo architecture with an official weight file (``--weights carn-m=carn_m.pth``; per
scale with ``--weights imdn@x4=IMDN_x4.pth``, for releases with one file per scale) or a
model file (``--model my_model.pt``: TorchScript, or a state_dict that fits a zoo
architecture; ``my_model.pt@x4`` when it serves one scale).

An entry runs at a scale when its model supports that scale and it has weights for it; at
other scales it is *missing* (shown as ``-``, not ranked), with the reason.

Example:
    >>> es = parse_entries([], [])
    >>> [e.name for e in es]
    ['bicubic', 'demo-edsr', 'demo-carn-m']
    >>> es[0].missing_at(3), es[1].missing_at(3)
    (None, 'demo-edsr has no x3 model (scales 2, 4)')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from advsr.errors import InputError, ModelLoadError

__all__ = ["DEFAULT_ENTRIES", "Entry", "parse_entries", "split_scale"]

DEFAULT_ENTRIES = ("bicubic", "demo-edsr", "demo-carn-m")
"""Entries of every leaderboard: bicubic and the bundled demo models."""

_AT_SCALE = re.compile(r"^x?(\d+)$")


@dataclass(frozen=True)
class Entry:
    """One leaderboard entry.

    Attributes:
        name: how tables show it (a zoo name, or a model file's stem); unique.
        model: what the cells load: a zoo name or a model file path.
        weights: weight file per scale (zoo models given ``--weights``); ``0`` keys a file
            for every scale.
        only: the scales the entry is restricted to (``@xS``); empty: every scale.
    """

    name: str
    model: str
    weights: dict[int, str] = field(default_factory=dict)
    only: tuple[int, ...] = ()

    @property
    def is_file(self) -> bool:
        """The entry is a model file (not a zoo name)."""
        from advsr.models.sr import SR_MODELS

        return self.model not in SR_MODELS

    def weights_at(self, scale: int) -> str | None:
        """The weight file given for ``scale`` (None: bundled weights, none needed, or a
        model file)."""
        return self.weights.get(scale, self.weights.get(0))

    def missing_at(self, scale: int) -> str | None:
        """Why the entry does not run at ``scale`` (None: it runs)."""
        from advsr.models.sr import SR_MODELS

        if self.only and scale not in self.only:
            have = ", ".join(f"x{s}" for s in self.only)
            return f"{self.name} is given for {have} only"
        if self.is_file:
            return None
        e = SR_MODELS.get(self.model)
        if scale not in e.scales:
            have = ", ".join(str(s) for s in e.scales)
            return f"{self.name} has no x{scale} model (scales {have})"
        if e.needs_weights and self.weights_at(scale) is None and scale not in e.bundled:
            return f"no weights for {self.name} at x{scale}"
        return None

    def weight_file(self, scale: int) -> Path | None:
        """The file whose bytes make the entry's weights at ``scale`` (bundled files
        included; a model file is itself; None for parameter-free models)."""
        from advsr.models.sr import SR_MODELS, weights_dir

        if self.is_file:
            return Path(self.model)
        given = self.weights_at(scale)
        if given is not None:
            return Path(given)
        e = SR_MODELS.get(self.model)
        return weights_dir() / e.bundled[scale] if scale in e.bundled else None


def split_scale(spec: str, flag: str) -> tuple[str, int]:
    """``name@x4`` -> ``("name", 4)``; without a scale suffix the scale is 0 (every scale).

    Raises:
        InputError: a scale suffix below 2.

    Example:
        >>> split_scale("imdn@x4", "--weights"), split_scale("carn-m", "--weights")
        (('imdn', 4), ('carn-m', 0))
    """
    head, at, tail = spec.rpartition("@")
    m = _AT_SCALE.match(tail) if at else None
    if not at or m is None or not head:
        return spec, 0
    scale = int(m.group(1))
    if scale < 2:
        raise InputError(f"{flag}: the scale in {spec!r} must be >= 2")
    return head, scale


def _existing(path: str, what: str) -> str:
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{what}: no such file: {p}")
    if not p.is_file():
        raise ModelLoadError(f"{what}: not a regular file: {p}")
    return path


def _zoo_weights(items: Sequence[str]) -> dict[str, dict[int, str]]:
    """``--weights NAME[@xS]=FILE`` items by zoo name and scale (0: every scale)."""
    from advsr.models.sr import SR_MODELS

    out: dict[str, dict[int, str]] = {}
    for item in items:
        key, eq, path = item.partition("=")
        if not eq or not key or not path:
            raise InputError(f"--weights expects NAME=FILE or NAME@xS=FILE, got {item!r}")
        name, scale = split_scale(key.strip(), "--weights")
        e = SR_MODELS.get(name)
        if name in DEFAULT_ENTRIES:
            raise InputError(
                f"--weights: {name} is a default entry with bundled or no weights; "
                "name the architecture of your file instead (see `advsr models`)"
            )
        if not e.needs_weights:
            raise InputError(f"--weights: {name} has no parameters; it takes no weight file")
        per = out.setdefault(name, {})
        if scale in per or (scale and 0 in per) or (not scale and per):
            raise InputError(f"--weights gives {name} twice for the same scale")
        per[scale] = _existing(path, f"--weights {key}")
    return out


def parse_entries(weights: Sequence[str], models: Sequence[str]) -> list[Entry]:
    """The entries of a run: :data:`DEFAULT_ENTRIES`, then one per zoo name of ``weights``
    (``NAME[@xS]=FILE`` items), then one per ``models`` item (a zoo name, or a model file,
    either with an optional ``@xS``).

    Raises:
        UnknownNameError: a zoo name that does not exist.
        ModelLoadError: a weight or model file that does not exist.
        InputError: a malformed item, an entry given twice, a zoo model without weights.
    """
    from advsr.models.sr import SR_MODELS

    entries = {n: Entry(n, n) for n in DEFAULT_ENTRIES}
    for name, per in _zoo_weights(weights).items():
        only = () if 0 in per else tuple(sorted(per))
        entries[name] = Entry(name, name, per, only)
    for item in models:
        spec, scale = split_scale(item, "--model")
        only = (scale,) if scale else ()
        if spec in SR_MODELS:  # a zoo name wins over a file of that name (as everywhere)
            if spec in entries:
                if only:
                    raise InputError(f"--model {item}: {spec} is already an entry (all scales)")
                continue
            e = SR_MODELS.get(spec)
            if e.needs_weights and not e.bundled:
                raise InputError(f"--model {spec} needs weights: pass --weights {spec}=FILE")
            entries[spec] = Entry(spec, spec, {}, only)
            continue
        if not Path(spec).exists() and not any(c in spec for c in "/\\.") and spec:
            SR_MODELS.get(spec)  # an unknown zoo name: "did you mean"
        name = Path(_existing(spec, f"--model {item}")).stem
        if name in entries:
            raise InputError(f"--model {item}: an entry called {name!r} exists already")
        entries[name] = Entry(name, spec, {}, only)
    return list(entries.values())
