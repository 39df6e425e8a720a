"""The budget grammar, in one place: how a budget is written, read and shown.

A budget is written as a number or a fraction (``8/255``, ``0.03``, ``2e-3``); ``eps`` is
always the **total** budget (the L-inf or L2 radius, or ``eps2`` of an SSIM budget), and
the size of one step is ``step_size``. A budget is parsed once, where a value enters a
settings model: a field annotated with :data:`BUDGET` takes the text (from a spec, the
command line or Python) and holds the number.

Example:
    >>> parse_budget("8/255") == 8 / 255, format_budget(8 / 255)
    (True, '8/255')
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BeforeValidator

from advsr.errors import AdvsrError, InputError

__all__ = ["BUDGET", "budget_upper", "format_budget", "parse_budget"]

_FRACTION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*")


def parse_budget(text: str | float, upper: float | None = 1.0, name: str = "budget") -> float:
    """``"8/255"``, ``"0.03"`` or a number -> float in ``[0, upper]`` (no bound if None).

    Raises:
        InputError: unparsable, not finite, or out of range.

    Example:
        >>> parse_budget("8/255") == 8 / 255, parse_budget("0.5", upper=None)
        (True, 0.5)
    """
    if isinstance(text, bool):
        raise InputError(f"the {name} must be a number or a fraction like 8/255, got {text!r}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _FRACTION.fullmatch(str(text))
        try:
            if m is None:
                raise ValueError
            value = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
        except (ValueError, ZeroDivisionError):
            raise InputError(
                f"the {name} must be a number or a fraction like 8/255, got {text!r}"
            ) from None
    if not math.isfinite(value) or value < 0.0 or (upper is not None and value > upper):
        bound = f"in [0, {upper:g}] (images are in [0, 1])" if upper is not None else ">= 0"
        raise InputError(f"the {name} must be a finite number {bound}, got {text!r}")
    return value


def format_budget(eps: float | None, norm: str = "linf") -> str:
    """A budget as people write it: L-inf budgets as ``k/255`` when ``k`` is a multiple of
    1/8, everything else as a plain number (``-`` for no budget).

    Example:
        >>> format_budget(8 / 255), format_budget(0.5 / 255), format_budget(0.5, "l2")
        ('8/255', '0.5/255', '0.5')
    """
    if eps is None:
        return "-"
    if norm == "linf":
        k = eps * 255
        if abs(k * 8 - round(k * 8)) < 1e-6 and k > 0:
            return f"{round(k * 8) / 8:g}/255"
    return f"{eps:g}"


def budget_upper(norm: str) -> float | None:
    """The largest budget a norm allows: 1 for L-inf and SSIM budgets (images are in
    [0, 1]), none for L2."""
    return 1.0 if norm in ("linf", "ssim") else None


def _budget_text(value: Any) -> Any:
    """A budget written as text (``"8/255"``) as its number; numbers unchanged (the field's
    own bounds check them)."""
    if isinstance(value, str):
        try:
            return parse_budget(value, upper=None)
        except AdvsrError as exc:
            raise ValueError(str(exc)) from None
    return value


BUDGET = BeforeValidator(_budget_text)
"""Marks a settings field as a budget: it takes ``"8/255"`` as well as a number."""
