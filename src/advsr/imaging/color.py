"""BT.601 YCbCr ("studio swing", MATLAB ``rgb2ycbcr``) in both directions.

On RGB in ``[0, 1]``::

    Y  =  16 + 65.481 R + 128.553 G +  24.966 B     (in [16, 235])
    Cb = 128 - 37.797 R -  74.203 G + 112.000 B     (in [16, 240])
    Cr = 128 + 112.000 R - 93.786 G -  18.214 B

Functions here return these values divided by 255 (so Y lies in ``[16/255, 235/255]``), the
BasicSR convention; multiply by 255 for MATLAB's scale.
"""

from __future__ import annotations

import torch

from advsr.errors import ShapeError

__all__ = ["rgb_to_y", "rgb_to_ycbcr", "ycbcr_to_rgb"]

_M = torch.tensor(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=torch.float64,
)
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)


def _check3(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 3 or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"{name} expects (..., 3, H, W), got {shape}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} expects a floating tensor, got {x.dtype}")


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> YCbCr / 255 (BT.601 studio swing).

    Shape:
        ``(..., 3, H, W)`` -> ``(..., 3, H, W)``.

    Example:
        >>> y = rgb_to_ycbcr(torch.ones(1, 3, 1, 1))
        >>> [round(v * 255, 3) for v in y.flatten().tolist()]
        [235.0, 128.0, 128.0]
    """
    _check3(x, "rgb_to_ycbcr")
    m = _M.to(x.device, x.dtype) / 255.0
    off = _OFFSET.to(x.device, x.dtype) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x) + off[:, None, None]


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma only: ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``.

    Shape:
        ``(..., 3, H, W)`` -> ``(..., 1, H, W)``.
    """
    _check3(x, "rgb_to_y")
    m = _M[0].to(x.device, x.dtype) / 255.0
    return torch.einsum("j,...jhw->...hw", m, x).unsqueeze(-3) + 16.0 / 255.0


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no clipping).

    Shape:
        ``(..., 3, H, W)`` -> ``(..., 3, H, W)``.
    """
    _check3(x, "ycbcr_to_rgb")
    inv = torch.linalg.inv(_M).to(x.device, x.dtype) * 255.0
    off = _OFFSET.to(x.device, x.dtype) / 255.0
    return torch.einsum("ij,...jhw->...ihw", inv, x - off[:, None, None])
