"""Input validation that raises :mod:`advsr.errors` classes (never ``assert``)."""

from __future__ import annotations

import math

import torch

from advsr.errors import InputError, ShapeError

__all__ = [
    "check_image",
    "check_int_range",
    "check_non_negative",
    "check_positive_int",
    "check_scale",
]


def check_image(x: object, name: str = "image", *, check_range: bool = False) -> torch.Tensor:
    """Check the image contract: a floating tensor of shape ``(N, 3, H, W)``.

    Args:
        x: the object to check.
        name: how the value is called in the error message.
        check_range: also require all values in ``[0, 1]`` (costs one pass over the data).

    Returns:
        ``x`` itself, typed as a tensor.

    Raises:
        ShapeError: if ``x`` is not a floating NCHW tensor with 3 channels (or out of range).

    Shape:
        ``(N, 3, H, W)``.
    """
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ShapeError(f"{name} must have shape (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} must be a floating tensor in [0, 1], got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ShapeError(f"{name} is empty: shape {tuple(x.shape)}")
    if check_range:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0 or math.isnan(lo) or math.isnan(hi):
            raise ShapeError(f"{name} values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return x


def check_int_range(value: object, name: str, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``lo..hi`` (no upper bound when ``hi`` is None).

    Raises:
        InputError: otherwise (bools are not integers here).
    """
    ok = not isinstance(value, bool) and isinstance(value, int)
    if not ok or value < lo or (hi is not None and value > hi):  # type: ignore[operator]
        span = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise InputError(f"{name} must be an integer {span}, got {value!r}")
    return value  # type: ignore[return-value]


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an integer >= 1, else raise :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_scale(scale: object, name: str = "scale") -> int:
    """An SR scale factor: an integer >= 1 (1 is identity-sized)."""
    return check_positive_int(scale, name)


def check_non_negative(value: object, name: str) -> float:
    """Return ``value`` as float if it is a finite number >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return v
