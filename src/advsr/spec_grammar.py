"""The grammar of spec strings: ``name`` or ``name:key=value,key=value``.

Defense specs (``median:size=3x3``, ``sr:model=imdn,scale=2,weights=IMDN_x2.pth``) and
trigger specs are written in it. Values are read as ``AxB`` (a pair of ints), ints, floats
(``2/255`` allowed), ``true``/``false``, ``none``, else strings; keys may use ``-`` for
``_``. The canonical form sorts the settings and normalises the values, so two spellings of
one spec are one store key.

Example:
    >>> parse_spec("median:size=3x3")
    ('median', {'size': (3, 3)})
    >>> canonical_spec("tvm:lam=0.5,p=1/2")
    'tvm:lam=0.5,p=0.5'
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from advsr.errors import InputError

__all__ = ["canonical_spec", "format_value", "parse_spec"]


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
