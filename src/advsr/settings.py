"""Settings models: pydantic validation with one-line errors, and field roles.

Every settings object in advsr (an attack's settings, an experiment cell's config) is a frozen
pydantic model that refuses unknown fields. :func:`validate` builds one from a dict and turns
the first problem into an :class:`~advsr.errors.InputError` line.

A field can declare its *role* with ``Annotated[..., ROLE]``; :func:`field_role` reads it:

* :data:`NEUTRAL` - the value cannot change the result (a device, a batch size used only
  for memory, a progress flag): it is left out of the result identity;
* :data:`WEIGHTS` - a weight file: identified by its content hash, not its path;
* :data:`MODEL` - a zoo name or a model file (hashed when it is a file);
* :data:`DATA` - a dataset name or path: identified by the dataset's content fingerprint.

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

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from advsr.errors import InputError

__all__ = [
    "DATA",
    "MODEL",
    "NEUTRAL",
    "WEIGHTS",
    "Role",
    "Settings",
    "field_role",
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


class Settings(BaseModel):
    """Base of every settings model: frozen, unknown fields and nan/inf numbers refused; a
    docstring under a field is its description (the CLI's help)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )


def field_role(model: type[BaseModel], name: str) -> str | None:
    """The role declared on field ``name`` of ``model`` (None when it has none)."""
    info = model.model_fields.get(name)
    if info is None:
        return None
    for meta in info.metadata:
        if isinstance(meta, Role):
            return str(meta)
    return None


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
