"""Per-channel SSIM maps between an image and its adversarial example.

An SSIM map holds the local SSIM index of every pixel, computed from the statistics of a
window around it (Wang et al., "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 2004). The PGAP paper (``pgap_perceptual_ssim_attacks.txt``,
sec. V and appendix D1) uses one map per colour channel (R, G, B separately) to locate the
pixels an adversarial perturbation changed, "calculated using pixels in the local
neighbourhood of 8x8 block or Gaussian window of size 11x11 centered at the pixel". Both
windows are here:

* **Gaussian** (:func:`gaussian_ssim_maps`): the 11x11 window with sigma 1.5 of Wang et al.
  2004, computed by :func:`advsr.metrics.fidelity.ssim_map` with ``padding="same"``: a
  full-size map whose windows near the border are completed by half-sample symmetric
  extension (``scipy.ndimage`` ``mode="reflect"``), equal to the ``full=True`` map of
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``.
* **Block** (:func:`block_ssim_maps`): a uniform 8x8 window that *slides pixel by pixel*,
  the window of Wang & Bovik's universal quality index (2002) that Wang et al. 2004 (sec.
  III-C) describe as "a local 8x8 square window, which moves pixel-by-pixel over the entire
  image", and what the reference ``ssim_index.m`` computes with ``window = ones(8)/64``
  (``filter2(..., 'valid')``). The PGAP paper speaks of a map value per pixel "centered at
  the pixel", so it is a sliding window too (non-overlapping blocks would give one value per
  block, not per pixel). ``padding="same"`` (the default) gives a full-size map: an even
  window has no centre pixel, so, as ``scipy.ndimage.uniform_filter(size=8)``, the window of
  pixel ``i`` covers ``i - 4 .. i + 3`` (one more pixel above/left), with the same symmetric
  border extension; ``padding="valid"`` keeps the ``(H - 7) x (W - 7)`` fully covered
  windows of ``ssim_index.m`` (the window of output ``i`` covers ``i .. i + 7``). Statistics
  are population moments (divide by 64, as ``ssim_index.m``); ``sample_covariance=True``
  rescales variance and covariance by ``n / (n - 1)`` as skimage's default
  ``use_sample_covariance=True``.

Scale convention: images come in ``[0, 1]`` and are compared on the ``[0, 255]`` scale in
float64 with ``C1 = (0.01 * 255)^2`` and ``C2 = (0.03 * 255)^2`` (the project's SSIM
convention, :mod:`advsr.metrics.fidelity`). SSIM is invariant to scaling both the data and
``sqrt(C1), sqrt(C2)`` by the same factor, so the maps equal those of ``[0, 1]`` data with
``data_range=1`` (``C1 = 0.01^2``, ``C2 = 0.03^2``). The maps are not clipped: values lie
in ``[-1, 1]``; ``1 - map`` is the local distortion :mod:`advsr.explain.overlap` thresholds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
from torch import nn

from advsr.checks import check_image
from advsr.errors import InputError, ShapeError
from advsr.imaging._separable import apply_separable, matrix_on, symmetric_index, taps_to_matrix
from advsr.metrics.fidelity import C1, C2, PEAK, ssim_map

__all__ = ["SSIMMaps", "block_ssim_maps", "gaussian_ssim_maps", "ssim_maps", "uniform_matrix"]

Window = Literal["gaussian", "block"]
Padding = Literal["same", "valid"]


def _check_pair(x: torch.Tensor, x_adv: torch.Tensor) -> None:
    """Both images follow the image contract and have the same shape."""
    check_image(x, "x")
    check_image(x_adv, "x_adv")
    if x.shape != x_adv.shape:
        raise ShapeError(f"x and x_adv differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")


def _check_window_size(window_size: object, *, odd: bool) -> int:
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 2:
        raise InputError(f"window_size must be an integer >= 2, got {window_size!r}")
    if odd and window_size % 2 == 0:
        raise InputError(f"the Gaussian window size must be odd, got {window_size}")
    return window_size


def gaussian_ssim_maps(
    x: torch.Tensor, x_adv: torch.Tensor, *, window_size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Full-size SSIM map of every channel with a Gaussian window (Wang et al. 2004).

    Args:
        x: reference images in [0, 1].
        x_adv: distorted (adversarial) images in [0, 1].
        window_size: odd window size (11 by convention).
        sigma: Gaussian standard deviation in pixels (1.5 by convention).

    Returns:
        float64 local SSIM per channel and pixel, in ``[-1, 1]`` (1 where unchanged).

    Raises:
        ShapeError: images not ``(N, 3, H, W)``, of different shapes, or too small.
        InputError: an even or too small window, or ``sigma <= 0``.

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N, 3, H, W)``.

    Example:
        >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> gaussian_ssim_maps(x, x).shape, bool((gaussian_ssim_maps(x, x) == 1).all())
        (torch.Size([1, 3, 16, 16]), True)
    """
    _check_pair(x, x_adv)
    _check_window_size(window_size, odd=True)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
        raise InputError(f"sigma must be a number > 0, got {sigma!r}")
    return ssim_map(x_adv, x, window_size=window_size, sigma=float(sigma), padding="same")


@lru_cache(maxsize=64)
def uniform_matrix(n: int, size: int, padding: str) -> torch.Tensor:
    """1-D moving average of a length-``n`` signal over ``size`` samples as a float64 matrix.

    ``"valid"``: output ``i`` averages inputs ``i .. i + size - 1`` (``n - size + 1``
    outputs). ``"same"``: output ``i`` averages ``i - size // 2 .. i + size - 1 - size // 2``
    with half-sample symmetric extension at the borders (``scipy.ndimage.uniform_filter1d``
    with ``mode="reflect"``).

    Shape:
        ``(n', n)``.
    """
    n_out = n - size + 1 if padding == "valid" else n
    start = torch.arange(n_out) - (0 if padding == "valid" else size // 2)
    idx = start[:, None] + torch.arange(size)[None, :]
    taps = torch.full((n_out, size), 1.0 / size, dtype=torch.float64)
    return taps_to_matrix(taps, symmetric_index(idx, n), n)


def _box(x: torch.Tensor, size: int, padding: str) -> torch.Tensor:
    """Uniform ``size x size`` moving average of every plane (two float64 GEMMs)."""
    h, w = x.shape[-2:]
    mh = matrix_on(("box", h, size, padding), uniform_matrix(h, size, padding), x.device, x.dtype)
    mw = matrix_on(("box", w, size, padding), uniform_matrix(w, size, padding), x.device, x.dtype)
    return apply_separable(x, mh, mw)


def block_ssim_maps(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    *,
    window_size: int = 8,
    padding: Padding = "same",
    sample_covariance: bool = False,
) -> torch.Tensor:
    """SSIM map of every channel with a uniform sliding window (8x8 by default).

    Args:
        x: reference images in [0, 1].
        x_adv: distorted (adversarial) images in [0, 1].
        window_size: side of the square window (any integer >= 2; 8 as Wang et al.).
        padding: ``"same"`` (full-size map, symmetric borders, window ``i - k//2 ..
            i + k - 1 - k//2``) or ``"valid"`` (``ssim_index.m``: ``H - k + 1`` rows).
        sample_covariance: divide the second moments by ``k^2 - 1`` instead of ``k^2``
            (skimage's ``use_sample_covariance=True``); ``False`` is ``ssim_index.m``.

    Returns:
        float64 local SSIM per channel and pixel, in ``[-1, 1]``.

    Raises:
        ShapeError: images not ``(N, 3, H, W)``, of different shapes, or smaller than the
            window.
        InputError: a bad window size or padding.

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N, 3, H, W)`` (``"same"``) or
        ``(N, 3, H - k + 1, W - k + 1)`` (``"valid"``).

    Example:
        >>> x = torch.zeros(1, 3, 10, 12)
        >>> block_ssim_maps(x, x, padding="valid").shape
        torch.Size([1, 3, 3, 5])
    """
    _check_pair(x, x_adv)
    k = _check_window_size(window_size, odd=False)
    if padding not in ("same", "valid"):
        raise InputError(f"padding must be 'same' or 'valid', got {padding!r}")
    if min(x.shape[-2:]) < k:
        raise ShapeError(
            f"the {k}x{k} SSIM window needs at least {k}x{k} pixels, got {tuple(x.shape[-2:])}"
        )
    a = x.to(torch.float64) * PEAK
    b = x_adv.to(torch.float64) * PEAK
    c = a.shape[1]
    stats = _box(torch.cat([a, b, a * a, b * b, a * b], dim=1), k, padding)
    mu1, mu2, e11, e22, e12 = stats.split(c, dim=1)
    mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11, s22, s12 = e11 - mu11, e22 - mu22, e12 - mu12
    if sample_covariance:
        n = k * k
        s11, s22, s12 = (s * (n / (n - 1)) for s in (s11, s22, s12))
    num = (2 * mu12 + C1) * (2 * s12 + C2)
    den = (mu11 + mu22 + C1) * (s11 + s22 + C2)
    return num / den


def ssim_maps(x: torch.Tensor, x_adv: torch.Tensor, *, window: Window = "gaussian") -> torch.Tensor:
    """Full-size per-channel SSIM maps with the conventional settings of a window kind.

    ``"gaussian"``: 11x11, sigma 1.5 (:func:`gaussian_ssim_maps`); ``"block"``: sliding
    uniform 8x8, population moments, ``"same"`` padding (:func:`block_ssim_maps`).

    Args:
        x: reference images in [0, 1].
        x_adv: distorted (adversarial) images in [0, 1].
        window: ``"gaussian"`` or ``"block"``.

    Returns:
        float64 maps in ``[-1, 1]``.

    Raises:
        InputError: an unknown window kind.
        ShapeError: bad images.

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N, 3, H, W)``.

    Example:
        >>> x = torch.zeros(2, 3, 12, 12); y = x.clone(); y[0, 1, 5, 5] = 1.0
        >>> m = ssim_maps(x, y, window="block")
        >>> bool(m[0, 1, 5, 5] < 0.5), bool((m[1] == 1).all())
        (True, True)
    """
    if window == "gaussian":
        return gaussian_ssim_maps(x, x_adv)
    if window == "block":
        return block_ssim_maps(x, x_adv)
    raise InputError(f"unknown SSIM window {window!r}; use 'gaussian' or 'block'")


class SSIMMaps(nn.Module):
    """Module form of the per-channel SSIM maps (settings held, no parameters).

    Args:
        window: ``"gaussian"`` (11x11, sigma 1.5 by default) or ``"block"`` (8x8 uniform).
        window_size: window side; ``None`` takes 11 (Gaussian) or 8 (block).
        sigma: Gaussian sigma (Gaussian window only).
        padding: ``"same"`` or ``"valid"`` (block window only; the Gaussian map is always
            full size here).
        sample_covariance: ``n / (n - 1)`` moments (block window only).

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N, 3, H', W')``.

    Example:
        >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        >>> torch.equal(SSIMMaps("block")(x, x * 0.9), block_ssim_maps(x, x * 0.9))
        True
    """

    def __init__(
        self,
        window: Window = "gaussian",
        *,
        window_size: int | None = None,
        sigma: float = 1.5,
        padding: Padding = "same",
        sample_covariance: bool = False,
    ) -> None:
        super().__init__()
        if window not in ("gaussian", "block"):
            raise InputError(f"unknown SSIM window {window!r}; use 'gaussian' or 'block'")
        if padding not in ("same", "valid"):
            raise InputError(f"padding must be 'same' or 'valid', got {padding!r}")
        if window == "gaussian" and (padding != "same" or sample_covariance):
            raise InputError("padding and sample_covariance apply to the block window only")
        size = window_size if window_size is not None else (11 if window == "gaussian" else 8)
        self.window: Window = window
        self.window_size = _check_window_size(size, odd=window == "gaussian")
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
            raise InputError(f"sigma must be a number > 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.padding: Padding = padding
        self.sample_covariance = bool(sample_covariance)

    def forward(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        if self.window == "gaussian":
            return gaussian_ssim_maps(x, x_adv, window_size=self.window_size, sigma=self.sigma)
        return block_ssim_maps(
            x,
            x_adv,
            window_size=self.window_size,
            padding=self.padding,
            sample_covariance=self.sample_covariance,
        )

    def extra_repr(self) -> str:
        if self.window == "gaussian":
            return f"window='gaussian', window_size={self.window_size}, sigma={self.sigma}"
        return (
            f"window='block', window_size={self.window_size}, padding={self.padding!r}, "
            f"sample_covariance={self.sample_covariance}"
        )
