"""JSON helpers shared by the result store and the CLI.

JSON has no ``inf``/``nan`` (PSNR of identical images is ``inf``), so non-finite floats are
written as the strings ``"inf"``, ``"-inf"``, ``"nan"`` and read back as floats.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["from_json_number", "json_safe"]


def json_safe(v: Any) -> Any:
    """Recursively replace non-finite floats by their string names (tuples become lists)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    return v


def from_json_number(v: Any) -> Any:
    """Inverse of :func:`json_safe` for one value: ``"inf"`` -> ``float("inf")``."""
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    return v
