"""PSNR, SSIM and SSIM maps with the BasicSR / MATLAB conventions.

Conventions (DESIGN.md): images come in ``[0, 1]`` and are compared on the ``[0, 255]``
scale in float64; ``y_channel=True`` compares BT.601 luma ``16 + 65.481 R + 128.553 G +
24.966 B`` (in ``[16, 235]``, not rounded, as BasicSR); ``crop_border`` pixels are removed
from each side first. SSIM uses an 11x11 Gaussian window (sigma 1.5, normalised over its 11
taps), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, and averages the *valid* part of
the map (no padding), then the channels. This equals ``skimage.metrics.
structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)`` and BasicSR's ``calculate_ssim``.

SSIM has two computations, chosen by ``precision``:

* ``"fast"`` (the default): the Gaussian filter runs in float32 as two 1-D passes,
  depthwise convolutions on the CPU and sums of shifted slices elsewhere (no TF32 on
  GPUs); ``"same"`` maps are padded symmetrically by index first. The data are centred:
  each channel of each image has its own mean subtracted (in the input's precision) before
  any product is formed, and the local statistics are taken of the sum ``p = x + y`` and
  difference ``m = x - y`` (``4 mu_x mu_y = mu_p^2 - mu_m^2``, ``4 sigma_xy = sigma_p^2 -
  sigma_m^2``), so the difference of near-equal images never suffers cancellation. Planes
  are processed in cache-sized chunks on the CPU. Maps are returned as float64, SSIM
  values are float64 means of the float32 map. Against the float64 computation (and
  skimage) the SSIM value of a photograph agrees to about ``1e-7``; single map pixels in
  flat areas far from their channel's mean are within about ``1e-4`` (float32 rounding of
  the second moments, ``u * (mu - mean)^2 / C2``; subtracting a *local* mean instead is
  not exact with separable filters).
* ``"float64"``: the reference computation, float64 throughout, each axis filtered by a
  dense Gaussian matrix (two GEMMs); agrees with skimage to ``1e-12``.

Both are differentiable (every operation is part of the graph), so SSIM and PSNR can
serve as losses; the fast path's gradient is a float32 gradient. Every value function
returns one value per image: shape ``(N,)``, float64.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

from advsr.errors import InputError, ShapeError
from advsr.imaging._separable import apply_separable, matrix_on, symmetric_index, taps_to_matrix
from advsr.imaging.color import rgb_to_y

__all__ = [
    "Precision",
    "gaussian_matrix",
    "gaussian_window",
    "mse",
    "psnr",
    "ssim",
    "ssim_map",
]

Precision = Literal["fast", "float64"]
"""``"fast"``: float32 separable convolutions on centred data (default); ``"float64"``: the
float64 reference (dense per-axis Gaussian matrices)."""

PEAK = 255.0
C1 = (0.01 * PEAK) ** 2
C2 = (0.03 * PEAK) ** 2


def _prepare(
    x: torch.Tensor,
    y: torch.Tensor,
    crop_border: int,
    y_channel: bool,
    *,
    dtype: torch.dtype = torch.float64,
    scale: float = PEAK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair of batches and bring them to ``dtype`` ``[0, scale]`` (or Y), cropped.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N, C', H - 2 b, W - 2 b)`` x2, ``C' = 1`` if ``y_channel``.
    """
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
    a = x.to(dtype)
    b = y.to(dtype)
    if y_channel:
        if x.shape[1] != 3:
            raise ShapeError(f"y_channel=True needs RGB images, got {x.shape[1]} channels")
        a, b = rgb_to_y(a), rgb_to_y(b)
    if scale != 1.0:
        a, b = a * scale, b * scale
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


# ----------------------------------------------------------------- fast SSIM (float32)

# Elements per statistic map in one chunk of planes on the CPU: small enough that a chunk's
# intermediates stay in cache (5-6x faster than one pass over a 16x3x299x299 batch), large
# enough to amortise the per-call overhead. Other devices take the batch in one go.
_CHUNK_CPU = 1 << 20
_CHUNK_OTHER = 1 << 26
# Devices filtered by depthwise ``conv2d`` (oneDNN, channels-last). Elsewhere the filter is a
# sum of shifted slices: on CUDA a channels-last depthwise convolution goes to cuDNN, whose
# float32 convolutions may run in TF32 (10-bit mantissa) in both passes of autograd.
_CONV_DEVICES = ("cpu",)


@lru_cache(maxsize=8)
def _taps32(size: int, sigma: float) -> tuple[float, ...]:
    """The Gaussian taps rounded to float32 (as Python floats, exact)."""
    return tuple(gaussian_window(size, sigma).to(torch.float32).tolist())


@lru_cache(maxsize=8)
def _taps32_scale(size: int, sigma: float) -> float:
    """``(sum of the float32 taps)^2``: the gain of the 2-D float32 filter, divided out later."""
    return math.fsum(_taps32(size, sigma)) ** 2


def _shift_add(t: torch.Tensor, taps: tuple[float, ...], dim: int) -> torch.Tensor:
    """Valid 1-D filtering along ``dim`` as a sum of shifted slices (plain float arithmetic).

    Shape:
        ``n`` along ``dim`` -> ``n - len(taps) + 1``.
    """
    n = t.shape[dim] - len(taps) + 1
    out = t.narrow(dim, 0, n) * taps[0]
    for i in range(1, len(taps)):
        out = torch.add(out, t.narrow(dim, i, n), alpha=taps[i])
    return out


def _gauss32(t: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Valid separable Gaussian filter of every plane, float32 taps (gain not divided out).

    Shape:
        ``(B, K, H, W)`` -> ``(B, K, H - size + 1, W - size + 1)``.
    """
    if t.device.type not in _CONV_DEVICES:
        taps = _taps32(size, sigma)
        return _shift_add(_shift_add(t, taps, -1), taps, -2)
    k = t.shape[1]
    g = matrix_on(("gauss", size, sigma), gaussian_window(size, sigma), t.device, torch.float32)
    return F.conv2d(
        F.conv2d(t, g.view(1, 1, 1, size).expand(k, 1, 1, size), groups=k),
        g.view(1, 1, size, 1).expand(k, 1, size, 1),
        groups=k,
    )


@lru_cache(maxsize=32)
def _symmetric_pad_index(n: int, r: int, device: str) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``r`` symmetric samples on each side.

    Shape:
        ``(n + 2 r,)``.
    """
    return symmetric_index(torch.arange(-r, n + r), n).to(device)


def _pad_symmetric(t: torch.Tensor, r: int) -> torch.Tensor:
    """Symmetric (edge repeated) padding of the last two axes by ``r``, any ``r`` and size.

    Shape:
        ``(K, H, W)`` -> ``(K, H + 2 r, W + 2 r)``.
    """
    h, w = t.shape[-2:]
    dev = str(t.device)
    t = t.index_select(-2, _symmetric_pad_index(h, r, dev))
    return t.index_select(-1, _symmetric_pad_index(w, r, dev))


def _fast_planes(
    a: torch.Tensor, b: torch.Tensor, size: int, sigma: float, padding: str
) -> torch.Tensor:
    """SSIM map of independent planes in float32, on the ``[0, 1]`` scale.

    Statistics of ``p = x' + y'`` and ``m = x' - y'`` (``x'``, ``y'``: the planes minus their
    means): ``SSIM = (mu_p^2 - mu_m^2 + 2 C1) (v_p - v_m + 2 C2) / ((mu_p^2 + mu_m^2 + 2 C1)
    (v_p + v_m + 2 C2))`` with ``mu`` the uncentred local means and ``v`` local variances.
    The float32 taps' gain ``s`` is folded into the constants instead of rescaling the maps.

    Shape:
        ``(K, H, W)`` x2 -> ``(K, H', W')`` float32.
    """
    ca = a.mean(dim=(1, 2), keepdim=True).detach()
    cb = b.mean(dim=(1, 2), keepdim=True).detach()
    xa, xb = a - ca, b - cb
    if padding == "same":
        xa, xb = _pad_symmetric(xa, size // 2), _pad_symmetric(xb, size // 2)
    # channels-last (planes innermost) from here on where convolutions filter: oneDNN's
    # depthwise convolutions run ~3x faster in it, and the elementwise operations keep it
    conv = a.device.type in _CONV_DEVICES
    fmt = torch.channels_last if conv else torch.contiguous_format
    xa = xa.unsqueeze(0).to(torch.float32, memory_format=fmt)
    xb = xb.unsqueeze(0).to(torch.float32, memory_format=fmt)
    p, m = xa + xb, xa - xb
    t = torch.cat([p, m, p * p, m * m])  # (4, K, H, W)
    stats = _gauss32(t, size, sigma)
    s = _taps32_scale(size, sigma)
    p0, m0, q0, r0 = stats.unbind(0)  # s * (mu_p', mu_m', E[p'^2], E[m'^2])
    vp = torch.addcmul(q0, p0, p0, value=-1.0 / s)  # s * v_p
    vm = torch.addcmul(r0, m0, m0, value=-1.0 / s)
    mp = p0 + ((ca + cb) * s).to(torch.float32)  # s * mu_p
    mm = m0 + ((ca - cb) * s).to(torch.float32)
    mp2, mm2 = mp * mp, mm * mm
    c1 = 2.0 * (C1 / PEAK**2) * s * s
    c2 = 2.0 * (C2 / PEAK**2) * s
    return ((mp2 - mm2 + c1) * (vp - vm + c2)) / ((mp2 + mm2 + c1) * (vp + vm + c2))


def _fast_chunks(
    a: torch.Tensor, b: torch.Tensor, size: int, sigma: float, padding: str
) -> list[torch.Tensor]:
    """:func:`_fast_planes` over chunks of the ``N * C`` planes (cache-sized on the CPU).

    Shape:
        ``(N, C, H, W)`` x2 -> list of ``(K_i, H', W')`` float32, ``sum K_i = N C``.
    """
    n, c, h, w = a.shape
    budget = _CHUNK_CPU if a.device.type == "cpu" else _CHUNK_OTHER
    pad = 2 * (size // 2) if padding == "same" else 0
    per = max(1, budget // ((h + pad) * (w + pad)))
    ap, bp = a.reshape(n * c, h, w), b.reshape(n * c, h, w)
    return [
        _fast_planes(ap[i : i + per], bp[i : i + per], size, sigma, padding)
        for i in range(0, n * c, per)
    ]


def _ssim_inputs(
    x: torch.Tensor,
    y: torch.Tensor,
    crop_border: int,
    y_channel: bool,
    window_size: int,
    padding: str,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the SSIM options and prepare the images for the chosen precision.

    ``"float64"``: float64 on ``[0, 255]``; ``"fast"``: ``[0, 1]``, float64 if either input
    is float64 (centring happens before the float32 cast), float32 otherwise.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N, C', H', W')`` x2.
    """
    if padding not in ("valid", "same"):
        raise InputError(f"padding must be 'valid' or 'same', got {padding!r}")
    if precision not in ("fast", "float64"):
        raise InputError(f"precision must be 'fast' or 'float64', got {precision!r}")
    if window_size < 1 or window_size % 2 == 0:
        raise InputError(f"window_size must be odd and positive, got {window_size}")
    if precision == "float64":
        a, b = _prepare(x, y, crop_border, y_channel)
    else:
        wide = torch.float64 in (getattr(x, "dtype", None), getattr(y, "dtype", None))
        dtype = torch.float64 if wide else torch.float32
        a, b = _prepare(x, y, crop_border, y_channel, dtype=dtype, scale=1.0)
    if padding == "valid" and min(a.shape[-2:]) < window_size:
        raise ShapeError(
            f"SSIM needs at least {window_size}x{window_size} pixels, got {tuple(a.shape[-2:])}"
        )
    if padding == "same" and min(a.shape[-2:]) <= window_size // 2:
        raise ShapeError(f"image too small for a {window_size}x{window_size} SSIM window")
    return a, b


def _ssim_map64(
    a: torch.Tensor, b: torch.Tensor, window_size: int, sigma: float, padding: str
) -> torch.Tensor:
    """The float64 reference map of prepared ``[0, 255]`` images (dense Gaussian matrices).

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N, C, H', W')``.
    """
    c = a.shape[1]
    stats = _filter(torch.cat([a, b, a * a, b * b, a * b], dim=1), window_size, sigma, padding)
    mu1, mu2, e11, e22, e12 = stats.split(c, dim=1)
    mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11, s22, s12 = e11 - mu11, e22 - mu22, e12 - mu12
    num = (2 * mu12 + C1) * (2 * s12 + C2)
    den = (mu11 + mu22 + C1) * (s11 + s22 + C2)
    return num / den


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    window_size: int = 11,
    sigma: float = 1.5,
    padding: Literal["valid", "same"] = "valid",
    precision: Precision = "fast",
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
        precision: ``"fast"`` (default: float32 separable convolutions on centred data,
            pixels within ~1e-4 of the reference, see the module notes) or ``"float64"``
            (the float64 reference, within 1e-12 of skimage).

    Returns:
        float64 map (computed in float32 by the fast path).

    Raises:
        ShapeError: bad or mismatching tensors, or images smaller than the window.
        InputError: unknown ``padding`` or ``precision``, or an even window.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N, C', H', W')`` with ``C' = 1`` if ``y_channel``.

    Example:
        >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim_map(x, x).shape, bool((ssim_map(x, x, padding="same") == 1).all())
        (torch.Size([1, 3, 6, 6]), True)
    """
    a, b = _ssim_inputs(x, y, crop_border, y_channel, window_size, padding, precision)
    if precision == "float64":
        return _ssim_map64(a, b, window_size, sigma, padding)
    n, c = a.shape[:2]
    maps = torch.cat(_fast_chunks(a, b, window_size, sigma, padding))
    return maps.reshape(n, c, *maps.shape[-2:]).to(torch.float64)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    precision: Precision = "fast",
) -> torch.Tensor:
    """Structural similarity per image: mean of the valid SSIM map, then of the channels.

    Args:
        x: images in [0, 1].
        y: reference images in [0, 1].
        crop_border: pixels removed from each side.
        y_channel: compare BT.601 luma instead of RGB.
        precision: ``"fast"`` (default; float32 maps summed in float64, within ~1e-7 of the
            reference on photographs) or ``"float64"`` (the reference computation).

    Returns:
        float64 SSIM values in ``[-1, 1]``.

    Raises:
        ShapeError: bad or mismatching tensors, or images smaller than 11x11.
        InputError: an unknown ``precision``.

    Shape:
        ``(N, C, H, W)`` x2 -> ``(N,)``.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> ssim(x, x).tolist()
        [1.0, 1.0]
    """
    a, b = _ssim_inputs(x, y, crop_border, y_channel, 11, "valid", precision)
    if precision == "float64":
        return _ssim_map64(a, b, 11, 1.5, "valid").mean(dim=(1, 2, 3))
    n, c = a.shape[:2]
    sums = torch.cat(
        [m.sum(dim=(1, 2), dtype=torch.float64) for m in _fast_chunks(a, b, 11, 1.5, "valid")]
    )
    count = (a.shape[-2] - 10) * (a.shape[-1] - 10)
    return sums.reshape(n, c).mean(dim=1) / count
