"""PSNR, SSIM and SSIM maps with the BasicSR / MATLAB conventions.

Conventions (DESIGN.md): images come in ``[0, 1]`` and are compared on the ``[0, 255]``
scale in float64; ``y_channel=True`` compares BT.601 luma ``16 + 65.481 R + 128.553 G +
24.966 B`` (in ``[16, 235]``, not rounded, as BasicSR); ``crop_border`` pixels are removed
from each side first. SSIM uses an 11x11 Gaussian window (sigma 1.5, normalised over its 11
taps), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, and averages the *valid* part of
the map (no padding), then the channels. This equals ``skimage.metrics.
structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)`` and BasicSR's ``calculate_ssim``.

Every function returns one value per image: shape ``(N,)``, float64. They are differentiable
(the float64 computation is part of the graph), so SSIM and PSNR can serve as losses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch

from advsr.errors import InputError, ShapeError
from advsr.imaging._separable import apply_separable, matrix_on, symmetric_index, taps_to_matrix
from advsr.imaging.color import rgb_to_y

__all__ = ["gaussian_matrix", "gaussian_window", "mse", "psnr", "ssim", "ssim_map"]

PEAK = 255.0
C1 = (0.01 * PEAK) ** 2
C2 = (0.03 * PEAK) ** 2


def _prepare(
    x: torch.Tensor, y: torch.Tensor, crop_border: int, y_channel: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair of batches and bring them to float64 [0, 255] (or Y), border cropped."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ShapeError(f"{name} must be a (N, C, H, W) tensor, got {shape}")
    if x.shape != y.shape:
        raise ShapeError(f"images to compare differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise InputError(f"crop_border must be an integer >= 0, got {crop_border!r}")
    h, w = x.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise ShapeError(f"crop_border={crop_border} leaves nothing of a {h}x{w} image")
    a = x.to(torch.float64)
    b = y.to(torch.float64)
    if y_channel:
        if x.shape[1] != 3:
            raise ShapeError(f"y_channel=True needs RGB images, got {x.shape[1]} channels")
        a, b = rgb_to_y(a), rgb_to_y(b)
    a, b = a * PEAK, b * PEAK
    if crop_border:
        c = crop_border
        a, b = a[..., c:-c, c:-c], b[..., c:-c, c:-c]
    return a, b


def mse(
    x: torch.Tensor, y: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False
) -> torch.Tensor:
    """Mean squared error on the [0, 255] scale, per image.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N,)``.
    """
    a, b = _prepare(x, y, crop_border, y_channel)
    return ((a - b) ** 2).mean(dim=(1, 2, 3))


def psnr(
    x: torch.Tensor, y: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, peak 255, per image (``inf`` for identical images).

    Args:
        x: images in [0, 1].
        y: reference images in [0, 1].
        crop_border: pixels removed from each side (the SR convention is the scale).
        y_channel: compare BT.601 luma instead of all RGB channels.

    Returns:
        float64 PSNR values.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N,)``.

    Example:
        >>> x = torch.zeros(1, 3, 8, 8); y = torch.full((1, 3, 8, 8), 1 / 255)
        >>> round(float(psnr(x, y)), 4)
        48.1308
    """
    err = mse(x, y, crop_border=crop_border, y_channel=y_channel)
    return 10.0 * torch.log10(PEAK**2 / err)


@lru_cache(maxsize=8)
def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (``cv2.getGaussianKernel``), float64.

    Shape:
        ``(size,)``.
    """
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


@lru_cache(maxsize=64)
def gaussian_matrix(n: int, size: int, sigma: float, padding: str) -> torch.Tensor:
    """1-D Gaussian filtering of a length-``n`` signal as a float64 matrix.

    ``"valid"`` keeps the ``n - size + 1`` fully covered outputs; ``"same"`` keeps ``n``
    outputs with symmetric boundaries (``scipy.ndimage`` ``mode="reflect"``, as skimage).

    Shape:
        ``(n', n)``.
    """
    g = gaussian_window(size, sigma)
    r = size // 2
    n_out = n - size + 1 if padding == "valid" else n
    start = torch.arange(n_out) + (0 if padding == "valid" else -r)
    idx = start[:, None] + torch.arange(size)[None, :]
    return taps_to_matrix(g.expand(n_out, size), symmetric_index(idx, n), n)


def _filter(x: torch.Tensor, size: int, sigma: float, padding: str) -> torch.Tensor:
    """Separable Gaussian filter of every channel (two float64 GEMMs)."""
    h, w = x.shape[-2:]
    mh = matrix_on(
        ("gauss", h, size, sigma, padding),
        gaussian_matrix(h, size, sigma, padding),
        x.device,
        x.dtype,
    )
    mw = matrix_on(
        ("gauss", w, size, sigma, padding),
        gaussian_matrix(w, size, sigma, padding),
        x.device,
        x.dtype,
    )
    return apply_separable(x, mh, mw)


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    window_size: int = 11,
    sigma: float = 1.5,
    padding: Literal["valid", "same"] = "valid",
) -> torch.Tensor:
    """Local SSIM per channel and pixel (Gaussian window).

    Args:
        x: images in [0, 1].
        y: reference images in [0, 1].
        crop_border: pixels removed from each side before filtering.
        y_channel: compute on BT.601 luma (one channel).
        window_size: odd window size (11 by convention).
        sigma: Gaussian sigma (1.5 by convention).
        padding: ``"valid"`` (the map BasicSR/skimage average: ``window_size - 1`` smaller)
            or ``"same"`` (full size with symmetric boundaries, equal to skimage's
            ``full=True`` map; for visualisation).

    Returns:
        float64 map.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N, C', H', W')`` with ``C' = 1`` if ``y_channel``.
    """
    if padding not in ("valid", "same"):
        raise InputError(f"padding must be 'valid' or 'same', got {padding!r}")
    if window_size < 1 or window_size % 2 == 0:
        raise InputError(f"window_size must be odd and positive, got {window_size}")
    a, b = _prepare(x, y, crop_border, y_channel)
    if padding == "valid" and min(a.shape[-2:]) < window_size:
        raise ShapeError(
            f"SSIM needs at least {window_size}x{window_size} pixels, got {tuple(a.shape[-2:])}"
        )
    if padding == "same" and min(a.shape[-2:]) <= window_size // 2:
        raise ShapeError(f"image too small for a {window_size}x{window_size} SSIM window")
    c = a.shape[1]
    stats = _filter(torch.cat([a, b, a * a, b * b, a * b], dim=1), window_size, sigma, padding)
    mu1, mu2, e11, e22, e12 = stats.split(c, dim=1)
    mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11, s22, s12 = e11 - mu11, e22 - mu22, e12 - mu12
    num = (2 * mu12 + C1) * (2 * s12 + C2)
    den = (mu11 + mu22 + C1) * (s11 + s22 + C2)
    return num / den


def ssim(
    x: torch.Tensor, y: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False
) -> torch.Tensor:
    """Structural similarity per image: mean of the valid SSIM map, then of the channels.

    Args:
        x: images in [0, 1].
        y: reference images in [0, 1].
        crop_border: pixels removed from each side.
        y_channel: compare BT.601 luma instead of RGB.

    Returns:
        float64 SSIM values in ``[-1, 1]``.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N,)``.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> ssim(x, x).tolist()
        [1.0, 1.0]
    """
    return ssim_map(x, y, crop_border=crop_border, y_channel=y_channel).mean(dim=(1, 2, 3))
