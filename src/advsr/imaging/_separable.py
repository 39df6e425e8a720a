"""Separable linear image operators as dense per-axis matrices (one GEMM per axis).

Resizing and Gaussian filtering are linear along each axis, so each is a matrix ``M`` of
shape ``(out, in)`` per axis and the 2-D operator is ``M_h @ x @ M_w.T``. On CPU and GPU this
runs as two batched GEMMs, which beats gathers or grouped float64 convolutions by 5-10x at
the image sizes of SR work (see ``benchmarks/resize_metrics.py``); the cost is
``O(in * out)`` per row instead of ``O(taps * out)``, negligible below a few thousand pixels.
"""

from __future__ import annotations

from functools import lru_cache

import torch

__all__ = ["apply_separable", "matrix_on", "symmetric_index", "taps_to_matrix"]


def symmetric_index(idx: torch.Tensor, length: int) -> torch.Tensor:
    """Map any integer index onto ``[0, length)`` by symmetric reflection with the edge repeated.

    The sequence ``0..L-1, L-1..0`` repeated: MATLAB's ``symmetric`` padding and
    ``scipy.ndimage``'s ``mode='reflect'``.

    Shape:
        any -> same.
    """
    period = 2 * length
    k = torch.remainder(idx, period)
    return torch.where(k < length, k, period - 1 - k)


def taps_to_matrix(weights: torch.Tensor, indices: torch.Tensor, in_length: int) -> torch.Tensor:
    """Dense ``(out, in)`` matrix from per-output taps (repeated indices add up).

    Shape:
        ``(out, P)`` x2 -> ``(out, in_length)``.
    """
    m = torch.zeros(weights.shape[0], in_length, dtype=weights.dtype)
    m.scatter_add_(1, indices.long(), weights)
    return m


@lru_cache(maxsize=64)
def _cached_on(
    key: tuple[object, ...], m: torch.Tensor, device: str, dtype: torch.dtype
) -> torch.Tensor:
    return m.to(device=device, dtype=dtype)


def matrix_on(
    key: tuple[object, ...], m: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``m`` on a device and dtype, cached by ``key`` (so GPU copies are made once)."""
    return _cached_on(key, m, str(device), dtype)


def apply_separable(x: torch.Tensor, mh: torch.Tensor, mw: torch.Tensor) -> torch.Tensor:
    """``mh @ x @ mw.T`` over the last two axes (height first, as MATLAB resizes).

    Shape:
        ``(..., H, W)`` with ``mh (H', H)``, ``mw (W', W)`` -> ``(..., H', W')``.
    """
    return torch.matmul(torch.matmul(mh, x), mw.transpose(0, 1))
