"""Settings models: pydantic validation with one-line errors, and field roles.

Every settings object in advsr (an attack's settings, an experiment cell's config) is a frozen
pydantic model that refuses unknown fields. :func:`validate` builds one from a dict and turns
the first problem into an :class:`~advsr.errors.InputError` line.

A field can declare its *role* with ``Annotated[..., ROLE]``; :func:`field_role` reads it:

* :data:`NEUTRAL` - the value cannot change the result (a device, a batch size used only
  for memory, a progress flag): it is left out of the result identity;
* :data:`WEIGHTS` - a weight file: identified by its content hash, not its path;
* :data:`MODEL` - a zoo name or a model file (hashed when it is a file);
* :data:`DATA` - a dataset name or path: identified by the dataset's content fingerprint;
* :data:`FILE` - any other file a setting may name (an image, a mask, a patch bank): when
  the value names an existing file it is identified by its content hash.

The same markers declare the file settings of defense factories (their parameters) and
trigger dataclasses (their fields); :func:`file_roles` reads them from any of the three, and
:mod:`advsr.files` turns them into identities, labels and provenance entries.

Example:
    >>> from advsr.experiments.eval_sr import EvalSRConfig
    >>> validate(EvalSRConfig, {"scale": 3}).crop_border, field_role(EvalSRConfig, "device")
    (3, 'neutral')
    >>> validate(EvalSRConfig, {"scael": 3})
    Traceback (most recent call last):
    ...
    advsr.errors.InputError: invalid scael: Extra inputs are not permitted (did you mean 'scale'?)
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import functools
import inspect
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from advsr.errors import InputError

__all__ = [
    "DATA",
    "FILE",
    "MODEL",
    "NEUTRAL",
    "WEIGHTS",
    "Role",
    "Settings",
    "field_role",
    "file_roles",
    "validate",
]

M = TypeVar("M", bound=BaseModel)


class Role(str):
    """A field role marker (see the module docstring)."""

    __slots__ = ()


NEUTRAL = Role("neutral")
WEIGHTS = Role("weights")
MODEL = Role("model")
DATA = Role("data")
FILE = Role("file")
_FILE_LIKE = frozenset({"weights", "model", "data", "file"})


class Settings(BaseModel):
    """Base of every settings model: frozen, unknown fields and nan/inf numbers refused; a
    docstring under a field is its description (the CLI's help)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """``true``/``false`` for a number is refused (pydantic would read ``eps = true`` as
        1.0, a budget of 255/255)."""
        if isinstance(data, dict):
            for name, value in data.items():
                info = cls.model_fields.get(name)
                if (
                    isinstance(value, bool)
                    and info is not None
                    and not _takes_bool(info.annotation)
                ):
                    raise ValueError(f"{name}: {str(value).lower()} is not a number")
        return data


_IGNORED: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "advsr_ignored", default=None
)


def note_ignored(setting: str, reason: str) -> None:
    """Record, while a cell is planned, that a setting the user gave does not reach its
    result (the attack has no such setting, its spec sets it otherwise, its ``@budget``
    wins); the driver refuses a setting that no cell of the run uses
    (:func:`collect_ignored`)."""
    got = _IGNORED.get()
    if got is not None:
        got.setdefault(setting, reason)


@contextlib.contextmanager
def collect_ignored() -> Iterator[dict[str, str]]:
    """Collect :func:`note_ignored` records (setting -> reason) while planning one cell."""
    got: dict[str, str] = {}
    token = _IGNORED.set(got)
    try:
        yield got
    finally:
        _IGNORED.reset(token)


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool (``bool``, ``Any``, a union or literal with one)."""
    if annotation is bool or annotation is Any:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return any(isinstance(a, bool) for a in args)
    return any(_takes_bool(a) for a in args) if args else not isinstance(annotation, type)


def field_role(model: type[BaseModel], name: str) -> str | None:
    """The role declared on field ``name`` of ``model`` (None when it has none)."""
    info = model.model_fields.get(name)
    if info is None:
        return None
    for meta in info.metadata:
        if isinstance(meta, Role):
            return str(meta)
    return None


@functools.cache
def file_roles(target: Any) -> dict[str, str]:
    """The settings of ``target`` declared as files or datasets, by name -> role.

    ``target`` is a settings model class, a dataclass, or a function whose parameters are
    its settings (a defense factory); roles are read from ``Annotated[..., ROLE]``.

    Example:
        >>> from typing import Annotated
        >>> def f(bank: Annotated[str | None, FILE] = None, k: int = 3) -> None: ...
        >>> file_roles(f)
        {'bank': 'file'}
    """
    if isinstance(target, type) and issubclass(target, BaseModel):
        names = list(target.model_fields)
        roles = {n: field_role(target, n) for n in names}
    else:
        hints = typing.get_type_hints(target, include_extras=True)
        if dataclasses.is_dataclass(target):
            names = [f.name for f in dataclasses.fields(target) if f.init]
        else:
            names = list(inspect.signature(target).parameters)
        roles = {}
        for n in names:
            meta = getattr(hints.get(n), "__metadata__", ())
            roles[n] = next((str(m) for m in meta if isinstance(m, Role)), None)
    return {n: r for n, r in roles.items() if r in _FILE_LIKE}


def validate(model: type[M], data: dict[str, Any], what: str = "") -> M:
    """Build ``model`` from ``data``; the first problem becomes a one-line InputError.

    Args:
        model: the pydantic class.
        data: the values.
        what: prefix naming what is validated (``"pgd setting"``), for the message.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc)
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        hint = ""
        if err.get("type") == "extra_forbidden" and loc:
            close = difflib.get_close_matches(loc[0], list(model.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if not close:
                hint = f"; known: {', '.join(model.model_fields) or 'none'}"
        head = " ".join(p for p in ("invalid", what, where) if p)
        raise InputError(f"{head}: {msg}{hint}") from None
