"""Independent numpy references of the published BasicSR / MATLAB formulas.

Written from the published formulas (BasicSR ``utils/matlab_functions.py`` and
``metrics/psnr_ssim.py``), deliberately in a different style from advsr: explicit symmetric
padding by flipping and a loop over output positions, float64 everywhere. Used by the tests
and by ``benchmarks/resize_metrics.py`` as the reference that advsr is compared against.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _weights_indices(in_len: int, out_len: int, scale: float, antialias: bool = True):
    width = 4.0
    if scale < 1 and antialias:
        width = width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = math.ceil(width) + 2
    ind = left[:, None] + np.arange(p)[None, :]
    dist = u[:, None] - ind
    w = scale * _cubic(dist * scale) if (scale < 1 and antialias) else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # drop an all-zero first / last column as BasicSR does
    zeros = (w == 0).sum(axis=0)
    if zeros[0] != 0:
        ind, w = ind[:, 1:], w[:, 1:]
    if zeros[-1] != 0:
        ind, w = ind[:, :-1], w[:, :-1]
    sym_s = int(-ind.min() + 1)
    sym_e = int(ind.max() - in_len)
    ind = ind + sym_s - 1  # 0-based into the padded signal
    return w, ind.astype(np.int64), sym_s, sym_e


def _resize_axis0(a: np.ndarray, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    in_len = a.shape[0]
    w, ind, sym_s, sym_e = _weights_indices(in_len, out_len, scale, antialias)
    parts = []
    if sym_s > 0:
        parts.append(np.flip(a[:sym_s], axis=0))
    parts.append(a)
    if sym_e > 0:
        parts.append(np.flip(a[in_len - sym_e :], axis=0))
    padded = np.concatenate(parts, axis=0)
    out = np.zeros((out_len, *a.shape[1:]), dtype=np.float64)
    for i in range(out_len):
        taps = padded[ind[i]]  # (P, ...)
        out[i] = np.tensordot(w[i], taps, axes=(0, 0))
    return out


def imresize_np(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """MATLAB imresize (bicubic) of an ``(H, W[, C])`` float array, height first."""
    a = np.asarray(img, dtype=np.float64)
    h, w = a.shape[:2]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    a = _resize_axis0(a, oh, scale, antialias)
    a = np.swapaxes(_resize_axis0(np.swapaxes(a, 0, 1), ow, scale, antialias), 0, 1)
    return a


def rgb2ycbcr_np(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """BT.601 on ``(H, W, 3)`` RGB in [0, 1]; returns values / 255 like BasicSR."""
    img = np.asarray(img, dtype=np.float64)
    if y_only:
        return (img @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0
    m = np.array([[65.481, -37.797, 112.0], [128.553, -74.203, -93.786], [24.966, 112.0, -18.214]])
    return (img @ m + np.array([16.0, 128.0, 128.0])) / 255.0


def psnr_np(img: np.ndarray, ref: np.ndarray, crop_border: int, y: bool) -> float:
    """BasicSR calculate_psnr on ``(H, W, 3)`` [0, 1] float images."""
    a, b = _prep(img, ref, crop_border, y)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _prep(img, ref, crop_border, y):
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if y:
        a = rgb2ycbcr_np(a, y_only=True)[..., None]
        b = rgb2ycbcr_np(b, y_only=True)[..., None]
    a, b = a * 255.0, b * 255.0
    if crop_border:
        c = crop_border
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    return a, b


def _gauss2d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return np.outer(g, g)


def _filter_valid(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    from scipy.signal import correlate2d

    return correlate2d(a, k, mode="valid")


def ssim_np(img: np.ndarray, ref: np.ndarray, crop_border: int, y: bool) -> float:
    """BasicSR calculate_ssim: per-channel Gaussian SSIM on [0, 255], valid map, mean."""
    a, b = _prep(img, ref, crop_border, y)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = _gauss2d()
    vals = []
    for ch in range(a.shape[2]):
        x, z = a[..., ch], b[..., ch]
        mu1, mu2 = _filter_valid(x, k), _filter_valid(z, k)
        s11 = _filter_valid(x * x, k) - mu1**2
        s22 = _filter_valid(z * z, k) - mu2**2
        s12 = _filter_valid(x * z, k) - mu1 * mu2
        m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
        vals.append(m.mean())
    return float(np.mean(vals))
