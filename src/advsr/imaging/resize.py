"""MATLAB-compatible ``imresize`` in batched torch, and ``modcrop``.

MATLAB's ``imresize`` (and BasicSR's ``matlab_functions.imresize``, which ports it) differs
from ``torch.nn.functional.interpolate(mode="bicubic")`` in three ways that matter for SR
benchmarks: the cubic kernel has a = -0.5 (not -0.75), when downscaling the kernel is
stretched by ``1/scale`` (antialiasing), and borders are handled by symmetric reflection
(the edge pixel repeated). This module implements exactly that:

* output coordinate ``x`` (1-based) maps to input ``u = x / scale + 0.5 * (1 - 1 / scale)``;
* taps ``left = floor(u - width / 2)`` .. ``left + ceil(width) + 1`` with
  ``width = 4 / scale`` when antialiasing a downscale (``4`` otherwise);
* weights ``scale * k(scale * (u - j))`` (antialiased) or ``k(u - j)``, normalised to sum 1;
* out-of-range taps index ``[1..L, L..1]`` periodically (symmetric padding).

Height is resized first, then width, as MATLAB does for equal scale factors. Each axis is
a dense ``(out, in)`` matrix applied by GEMM (:mod:`advsr.imaging._separable`). The operation
is linear, so it is differentiable and runs on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

import torch

from advsr.checks import check_scale
from advsr.errors import InputError, ShapeError
from advsr.imaging._separable import apply_separable, matrix_on, symmetric_index, taps_to_matrix

__all__ = ["Imresize", "cubic", "imresize", "modcrop", "resize_matrix", "resize_weights"]

Kernel = Literal["cubic", "linear", "box", "lanczos2", "lanczos3"]


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``).

    Shape:
        any -> same.
    """
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _linear(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp(min=0)


def _box(x: torch.Tensor) -> torch.Tensor:
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


def _lanczos(a: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def k(x: torch.Tensor) -> torch.Tensor:
        px = math.pi * x
        num = a * torch.sin(px) * torch.sin(px / a)
        den = px * px
        out = torch.where(den == 0, torch.ones_like(x), num / torch.where(den == 0, 1, den))
        return out * (x.abs() < a)

    return k


_KERNELS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "cubic": (cubic, 4.0),
    "linear": (_linear, 2.0),
    "box": (_box, 1.0),
    "lanczos2": (_lanczos(2), 4.0),
    "lanczos3": (_lanczos(3), 6.0),
}


@lru_cache(maxsize=256)
def resize_weights(
    in_length: int, out_length: int, scale: float, kernel: str = "cubic", antialias: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Taps and weights of a 1-D MATLAB resize (cached; float64, CPU).

    Args:
        in_length: input size along the axis.
        out_length: output size along the axis.
        scale: the scale factor (``out / in`` in MATLAB's convention when a size is given).
        kernel: interpolation kernel name.
        antialias: stretch the kernel when ``scale < 1``.

    Returns:
        ``(weights, indices)``; ``indices`` are 0-based into the input.

    Shape:
        both ``(out_length, P)``.
    """
    if kernel not in _KERNELS:
        raise InputError(f"unknown resize kernel {kernel!r}; known: {', '.join(_KERNELS)}")
    fn, width = _KERNELS[kernel]
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    if scale < 1 and antialias:
        width = width / scale
    left = torch.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * fn(dist * scale) if (scale < 1 and antialias) else fn(dist)
    w = w / w.sum(dim=1, keepdim=True)
    # symmetric boundary: index sequence 1..L, L..1 repeated (MATLAB's `aux`)
    k = symmetric_index(idx.long() - 1, in_length)
    keep = (w != 0).any(dim=0)
    return w[:, keep].contiguous(), k[:, keep].contiguous()


def _out_length(in_length: int, scale: float) -> int:
    exact = in_length * scale
    near = round(exact)
    return int(near) if abs(exact - near) < 1e-9 * max(1.0, exact) else math.ceil(exact)


@lru_cache(maxsize=256)
def resize_matrix(
    in_length: int, out_length: int, scale: float, kernel: str = "cubic", antialias: bool = True
) -> torch.Tensor:
    """The 1-D MATLAB resize as a dense ``(out_length, in_length)`` float64 matrix.

    Shape:
        ``(out_length, in_length)``.
    """
    w, k = resize_weights(in_length, out_length, scale, kernel, antialias)
    return taps_to_matrix(w, k, in_length)


def _axis_matrix(
    n: int, out: int, scale: float, kernel: str, antialias: bool, x: torch.Tensor
) -> torch.Tensor:
    key = ("imresize", n, out, scale, kernel, antialias)
    return matrix_on(key, resize_matrix(n, out, scale, kernel, antialias), x.device, x.dtype)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    kernel: Kernel = "cubic",
    antialias: bool = True,
) -> torch.Tensor:
    """Resize a batch exactly like MATLAB's ``imresize(img, scale)`` on double data.

    Give either ``scale`` (output ``ceil(scale * H) x ceil(scale * W)``, an integer result
    within 1e-9 is not rounded up) or ``size=(H_out, W_out)`` (then each axis uses its own
    scale ``out / in``, as MATLAB does). No clipping or rounding is applied: MATLAB rounds
    only because its input is uint8; round with :func:`advsr.imaging.quantize` to reproduce
    8-bit files.

    Args:
        x: images in any range, any number of channels.
        scale: factor, e.g. ``0.5`` to halve or ``4`` to upscale x4.
        size: explicit output size instead of ``scale``.
        kernel: ``"cubic"`` (MATLAB default, a = -0.5), ``"linear"``, ``"box"``,
            ``"lanczos2"``, ``"lanczos3"``.
        antialias: widen the kernel when downscaling (MATLAB default True).

    Returns:
        the resized batch, same dtype and device.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    Example:
        >>> x = torch.rand(2, 3, 64, 48)
        >>> imresize(x, 1 / 4).shape
        torch.Size([2, 3, 16, 12])
        >>> imresize(x, size=(32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"imresize expects a (N, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ShapeError(f"imresize expects a floating tensor, got {x.dtype}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if (scale is None) == (size is None):
        raise InputError("give exactly one of scale and size")
    if size is not None:
        oh, ow = size
        if oh < 1 or ow < 1:
            raise InputError(f"output size must be positive, got {size}")
        sh, sw = oh / h, ow / w
    else:
        assert scale is not None
        if not math.isfinite(scale) or scale <= 0:
            raise InputError(f"scale must be a positive number, got {scale}")
        sh = sw = float(scale)
        oh, ow = _out_length(h, sh), _out_length(w, sw)
        if oh < 1 or ow < 1:
            raise InputError(f"scale {scale} turns a {h}x{w} image into an empty one")
    if kernel not in _KERNELS:
        raise InputError(f"unknown resize kernel {kernel!r}; known: {', '.join(_KERNELS)}")
    mh = _axis_matrix(h, oh, sh, kernel, antialias, x)
    mw = _axis_matrix(w, ow, sw, kernel, antialias, x)
    return apply_separable(x, mh, mw)


class Imresize(torch.nn.Module):
    """Module form of :func:`imresize` holding its settings.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    Example:
        >>> Imresize(0.5)(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
    """

    def __init__(self, scale: float, kernel: Kernel = "cubic", antialias: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.kernel: Kernel = kernel
        self.antialias = antialias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, self.scale, kernel=self.kernel, antialias=self.antialias)


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom and right so that height and width are multiples of ``scale``.

    Raises:
        ShapeError: if the image is smaller than ``scale`` in either dimension.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H - H % s, W - W % s)``.

    Example:
        >>> modcrop(torch.zeros(1, 3, 10, 7), 4).shape
        torch.Size([1, 3, 8, 4])
    """
    s = check_scale(scale)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h < s or w < s:
        raise ShapeError(f"image of {h}x{w} pixels is smaller than the scale factor {s}")
    return x[..., : h - h % s, : w - w % s]
