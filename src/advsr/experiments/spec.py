"""Validation of experiment specs (pydantic) into one-line :class:`InputError` messages."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from advsr.errors import InputError

__all__ = ["validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Build ``model`` from ``data``; the first problem becomes a one-line InputError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "spec"
        raise InputError(f"invalid {where}: {err.get('msg', 'invalid value')}") from None
