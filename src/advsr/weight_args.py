"""The one ``--weights`` grammar of every command: ``FILE``, ``NAME=FILE``, ``NAME@xS=FILE``.

* ``FILE`` - the weights of the command's one model (``attack-sr --model imdn --weights
  IMDN_x2.pth``);
* ``NAME=FILE`` - the weights of the zoo model ``NAME`` (every scale it fits:
  ``carn-m=carn_m.pth``);
* ``NAME@xS=FILE`` - the weights of ``NAME`` at scale ``S`` only (``imdn@x4=IMDN_x4.pth``),
  for releases with one file per scale.

A command with one model takes any of the three (a name or scale that is not the command's
model is refused); a command with several takes the two named forms. A wrong form gets one
line that shows the grammar.

Example:
    >>> parse_weight_arg("imdn@x3=IMDN_x3.pth")
    WeightArg(name='imdn', scale=3, path='IMDN_x3.pth')
    >>> parse_weight_arg("IMDN_x2.pth")
    WeightArg(name=None, scale=None, path='IMDN_x2.pth')
    >>> single_model_weights("imdn@x2=IMDN_x2.pth", model="imdn", scale=2)
    'IMDN_x2.pth'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from advsr.errors import InputError

__all__ = [
    "WEIGHTS_GRAMMAR",
    "WeightArg",
    "parse_weight_arg",
    "single_model_weights",
    "split_weights_key",
]

WEIGHTS_GRAMMAR = (
    "FILE (the one model), NAME=FILE or NAME@xS=FILE "
    "(e.g. IMDN_x2.pth, imdn=IMDN_x2.pth, imdn@x3=IMDN_x3.pth)"
)
"""What ``--weights`` accepts (one line, for errors)."""

_KEY = re.compile(r"^([a-z0-9][a-z0-9._-]*)(?:@x([1-9][0-9]?))?$")


def split_weights_key(key: str) -> tuple[str, int | None] | None:
    """The left side of ``NAME=FILE`` / ``NAME@xS=FILE``: ``(name, scale)`` (lower-case; no
    scale: None), or None when it is no such name.

    Example:
        >>> split_weights_key("IMDN@x3"), split_weights_key("carn-m"), split_weights_key("a b")
        (('imdn', 3), ('carn-m', None), None)
    """
    m = _KEY.fullmatch(key.strip().lower())
    if m is None:
        return None
    return m.group(1), int(m.group(2)) if m.group(2) else None


@dataclass(frozen=True)
class WeightArg:
    """One ``--weights`` value: the model it names (None: the command's one model), the
    scale it is restricted to (None: every scale it fits) and the file."""

    name: str | None
    scale: int | None
    path: str


def parse_weight_arg(text: str, option: str = "--weights") -> WeightArg:
    """Read one ``--weights`` value (see the module docstring).

    A value with ``=`` whose left side is not a model name (``NAME`` or ``NAME@xS``) is a
    file when such a file exists (a path may hold ``=``), else refused.

    Raises:
        InputError: an empty value, an empty file after ``=``, a scale below 2, or a left
            side that is no name, naming the grammar.
    """
    value = str(text).strip()
    if not value:
        raise InputError(f"{option} expects {WEIGHTS_GRAMMAR}, got {text!r}")
    key, eq, path = value.partition("=")
    if not eq:
        return WeightArg(None, None, value)
    named = split_weights_key(key)
    if named is None:
        if Path(value).exists():
            return WeightArg(None, None, value)
        raise InputError(f"{option} expects {WEIGHTS_GRAMMAR}, got {text!r}")
    if not path.strip():
        raise InputError(f"{option} {text!r}: no file after '='; expects {WEIGHTS_GRAMMAR}")
    name, scale = named
    if scale is not None and scale < 2:
        raise InputError(f"{option}: the scale in {text!r} must be >= 2")
    return WeightArg(name, scale, path.strip())


def single_model_weights(
    text: str, *, model: str, scale: int | None, option: str = "--weights"
) -> str:
    """The file of a command with one model, from any of the three forms.

    Args:
        text: the ``--weights`` value.
        model: the command's model (a zoo name, or a model file).
        scale: the command's scale (None: a model without one, e.g. a classifier).
        option: the option's name, for errors.

    Raises:
        InputError: a named form whose name is not ``model``, or whose scale is not
            ``scale``.
    """
    arg = parse_weight_arg(text, option)
    if arg.name is None:
        return arg.path
    if arg.name != str(model).strip().lower():
        raise InputError(
            f"{option} {text!r} names {arg.name}, but the model is {model}: write "
            f"{option} FILE or {option} {model}=FILE"
        )
    if arg.scale is not None and arg.scale != scale:
        at = f"x{scale}" if scale is not None else "no scale"
        raise InputError(f"{option} {text!r} is for x{arg.scale}, but this command runs {at}")
    return arg.path
