"""The defense registry and defense specs (``name`` or ``name:key=value,key=value``).

A spec names a registered defense and its settings, e.g. ``median:size=3x3``,
``bit-depth:bits=4``, ``tvm:p=0.1``, ``sr:model=edsr,scale=2,denoise=wavelet``. Values are
parsed as ``AxB`` (a pair of ints), ints, floats (``2/255`` allowed), ``true``/``false``,
``none``, else strings; unknown names and keys get one-line errors with suggestions, and
every constructor validates its own ranges.

Example:
    >>> d = create_defense("median:size=1x3")
    >>> type(d).__name__, d.differentiable, d.stochastic
    ('MedianSmoothing', True, False)
    >>> canonical_spec("median:size=1x3")
    'median:size=1x3'
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from advsr.defenses.base import Defense
from advsr.errors import InputError
from advsr.registry import Registry

__all__ = [
    "DEFENSES",
    "DefenseEntry",
    "canonical_spec",
    "create_defense",
    "defense_files",
    "defense_identity",
    "defense_label",
    "format_value",
    "parse_spec",
    "register",
]


def _flag(cls: type[Defense], name: str) -> bool:
    """A class-level flag; one that depends on the settings (a property) is judged at the
    defaults, which keep it differentiable and deterministic."""
    value = getattr(cls, name)
    return name == "differentiable" if isinstance(value, property) else bool(value)


@dataclass(frozen=True)
class DefenseEntry:
    """A registered defense: a factory taking keyword settings, and a description."""

    factory: Callable[..., Defense]
    description: str
    classes: tuple[type[Defense], ...] = ()
    """The defense classes it builds (a chain: every stage), for its flags."""

    @property
    def roles(self) -> dict[str, str]:
        """Its settings declared as files or datasets (name -> role)."""
        from advsr.settings import file_roles

        return file_roles(self.factory)

    @property
    def differentiable(self) -> bool:
        """Every stage is differentiable (else the adaptive attack needs BPDA)."""
        return all(_flag(c, "differentiable") for c in self.classes)

    @property
    def stochastic(self) -> bool:
        """Some stage draws random numbers (the adaptive attack needs EOT)."""
        return any(_flag(c, "stochastic") for c in self.classes)

    @property
    def adaptive(self) -> str:
        """What :func:`~advsr.defenses.adaptive.adaptive` does with it."""
        return {
            (True, False): "attack directly",
            (False, False): "BPDA",
            (True, True): "EOT",
            (False, True): "EOT of BPDA",
        }[(self.differentiable, self.stochastic)]


DEFENSES: Registry[DefenseEntry] = Registry("defense")


def _value(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if "x" in low and all(p.isdigit() for p in low.split("x")) and low.count("x") == 1:
        a, b = low.split("x")
        return (int(a), int(b))
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(Fraction(t)) if "/" in t else float(t)
    except (ValueError, ZeroDivisionError):
        return t


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:k=v,k=v"`` -> ``(name, {k: v})``.

    Raises:
        InputError: a setting without ``=`` or an empty name.
    """
    name, _, rest = spec.strip().partition(":")
    if not name:
        raise InputError(f"empty defense name in {spec!r}")
    settings: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = part.partition("=")
        if not eq or not key.strip():
            raise InputError(f"defense setting {part!r} in {spec!r} is not key=value")
        name_ = key.strip().replace("-", "_")
        if name_ in settings:
            raise InputError(f"{spec!r} gives the setting {name_!r} twice")
        settings[name_] = _value(val)
    return name.strip().lower(), settings


def format_value(v: Any) -> str:
    """A setting's value as a canonical spec writes it (``3x3``, ``true``, ``0.5``)."""
    if isinstance(v, tuple):
        return "x".join(str(p) for p in v)
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)
    return str(v)


def canonical_spec(spec: str) -> str:
    """The spec with its settings sorted and values normalised (a stable store key)."""
    name, settings = parse_spec(spec)
    if not settings:
        return name
    return name + ":" + ",".join(f"{k}={format_value(settings[k])}" for k in sorted(settings))


def _roles(spec: str) -> dict[str, str]:
    return DEFENSES.get(parse_spec(spec)[0]).roles


def defense_identity(spec: str) -> str:
    """The spec as a cell's identity holds it: canonical, with every file or dataset it
    names replaced by its content hash (:func:`advsr.files.spec_identity`)."""
    from advsr.files import spec_identity

    return spec_identity(spec, _roles(spec))


def defense_label(spec: str) -> str:
    """The spec as tables show it: canonical, files by name and short hash, no paths.

    Example:
        >>> defense_label("median:size=3x3")
        'median:size=3x3'
    """
    from advsr.files import spec_label

    return spec_label(spec, _roles(spec))


def defense_files(spec: str) -> list[dict[str, Any]]:
    """The provenance entries (path, size, sha256) of the files and datasets a spec names."""
    from advsr.files import spec_files

    return spec_files(spec, _roles(spec), "defense.")


def create_defense(spec: str, **context: Any) -> Defense:
    """Build a registered defense from a spec.

    Args:
        spec: ``name`` or ``name:key=value,...``.
        context: extra keyword arguments passed to factories that accept them (e.g.
            ``device``).

    Raises:
        UnknownNameError: unknown defense (with suggestions).
        InputError: unknown setting (with the valid ones) or a value out of range.
    """
    name, settings = parse_spec(spec)
    entry = DEFENSES.get(name)
    params = inspect.signature(entry.factory).parameters
    for key in settings:
        if key not in params or key in context:
            valid = [p for p in params if p not in context]
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(
                f"{name} has no setting {key!r}{hint}; settings: {', '.join(valid) or 'none'}"
            )
    extra = {k: v for k, v in context.items() if k in params}
    try:
        return entry.factory(**settings, **extra)
    except TypeError as exc:  # a value of the wrong kind (e.g. a string for a number)
        raise InputError(f"bad settings for {name}: {exc}") from None


def register(
    name: str, factory: Callable[..., Defense], description: str, *classes: type[Defense]
) -> None:
    """Register a defense factory and the classes it builds (used by :mod:`advsr.defenses`)."""
    DEFENSES.register(name, DefenseEntry(factory, description, classes), description)
