"""Median smoothing: the spatial-smoothing squeezer of Xu et al. (2018), "Feature Squeezing".

Every pixel of every channel is replaced by the median of the ``kh x kw`` window around it,
which removes sparse salt-and-pepper-like perturbations while keeping edges (Xu et al.,
NDSS 2018, "local smoothing"; the seed report ``input_transformation_defenses.txt``
sec. 3.2 compares window shapes). The filter reproduces
``scipy.ndimage.median_filter(img, size=(1, kh, kw), mode="reflect")`` on a channel-first
image exactly (the same element is selected), which is the function Xu et al.'s reference
code (EvadeML-Zoo) calls. Conventions, all scipy's:

* **Window placement.** The window's anchor is element ``k // 2`` of each axis, so a window
  of size ``k`` covers offsets ``-(k // 2) .. k - 1 - k // 2``: centred for odd ``k``, and
  for even ``k`` one more pixel above/left than below/right (a 2x2 window covers the pixel
  and its upper-left neighbours).
* **Borders.** ``mode="reflect"`` of scipy, i.e. half-sample symmetric extension
  ``d c b a | a b c d | d c b a`` (the edge pixel is repeated; this is torch's and numpy's
  ``"symmetric"``, *not* torch's ``"reflect"``). Windows larger than the image keep
  mirroring, periodically with period ``2 * size``.
* **Even counts.** For an even number ``n = kh * kw`` of values scipy returns the element of
  rank ``n // 2`` (0-based) of the sorted window, i.e. the *upper* of the two middle values,
  not their mean; so does this module.

Implementation: the image is padded once by gathering mirrored indices (for 3x3, by the
equivalent one-pixel replicate pad). A 3x3 window (the common case) uses a min/max
selection network on contiguous shifted views of the flattened padded planes: each vertical
triple is sorted once and shared by the three windows that contain it, and the median of
nine is ``med3(max(lows), med3(mids), min(highs))``; on the CPU it runs over blocks of
planes of about 4 MiB so the intermediates stay in cache. Other
windows take ``torch.kthvalue`` over an ``unfold`` view. When autograd is recording, the
``kthvalue`` path is used for every size so the gradient flows to the selected element
(median filtering is differentiable almost everywhere, so the defense is
``differentiable=True``).

Bounds: each side of the window is at most :data:`MAX_KERNEL`, and the ``kthvalue`` path
runs over blocks of image planes whose windows fit the memory budget
(:func:`advsr.memory.max_memory`, ``--max-memory``): a window whose single plane does not
fit is refused with one line naming the budget (a 1000x1000 window once allocated 49 GB).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import BeforeValidator, Field, StrictInt

from advsr.checks import check_image
from advsr.defenses.base import Defense
from advsr.defenses.registry import DefenseSettings, register_defense
from advsr.errors import InputError
from advsr.memory import format_bytes, max_memory

__all__ = [
    "MAX_KERNEL",
    "MedianSettings",
    "MedianSmoothing",
    "build_median",
    "median_bytes_per_plane",
    "median_filter",
    "symmetric_pad",
]

MAX_KERNEL = 99
"""The largest side of a median window (Xu et al. use 2x2 and 3x3; 99x99 on a 299x299
plane already needs about 13 GiB in float32, which the memory budget refuses)."""


def _check_kernel(kernel: object) -> tuple[int, int]:
    """Validate a window size given as ``k`` or ``(kh, kw)`` and return ``(kh, kw)``."""
    sizes = (kernel, kernel) if isinstance(kernel, int) else kernel
    if (
        not isinstance(sizes, tuple | list)
        or len(sizes) != 2
        or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in sizes)
    ):
        raise InputError(
            f"median kernel must be a positive integer or a pair of them, got {kernel!r}"
        )
    if max(sizes) > MAX_KERNEL:
        raise InputError(
            f"median kernel sides must be at most {MAX_KERNEL}, got {sizes[0]}x{sizes[1]}"
        )
    return int(sizes[0]), int(sizes[1])


def median_bytes_per_plane(h: int, w: int, kh: int, kw: int, dtype: torch.dtype) -> int:
    """Peak bytes of the ``kthvalue`` path for one ``h x w`` plane: the ``h w kh kw`` window
    values copied, sorted in place and indexed (measured: 16 bytes a value in float32, 24 in
    float64).

    Example:
        >>> round(median_bytes_per_plane(299, 299, 5, 5, torch.float32) / 2**20, 1)
        34.1
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    return h * w * kh * kw * (2 * itemsize + 8)


def _mirror_index(n: int, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Indices ``start .. stop - 1`` folded into ``0 .. n - 1`` half-sample symmetrically."""
    i = torch.arange(start, stop, device=device).remainder(2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Half-sample symmetric padding (scipy ``"reflect"``, numpy ``"symmetric"``) of H and W.

    Unlike ``torch.nn.functional.pad``, the padding may exceed the image size (the
    extension keeps mirroring).

    Args:
        x: a tensor ``(..., H, W)``.
        top: rows added above.
        bottom: rows added below.
        left: columns added on the left.
        right: columns added on the right.

    Returns:
        A new contiguous tensor ``(..., H + top + bottom, W + left + right)``.

    Shape:
        ``(..., H, W)`` -> ``(..., H + top + bottom, W + left + right)``.

    Example:
        >>> symmetric_pad(torch.tensor([[1.0, 2.0, 3.0]]), 0, 0, 2, 1).tolist()
        [[2.0, 1.0, 1.0, 2.0, 3.0, 3.0]]
    """
    h, w = x.shape[-2:]
    rows = _mirror_index(h, -top, h + bottom, x.device)
    cols = _mirror_index(w, -left, w + right, x.device)
    return x[..., rows[:, None], cols[None, :]]


_BLOCK_BYTES = 1 << 22  # CPU cache block of the 3x3 network (fits the L3 cache, few OMP regions)


def _median3x3_block(flat: torch.Tensor, out: torch.Tensor, wp: int) -> None:
    """3x3 median network: padded planes ``flat`` ``(B, (H+2) * wp)`` into ``out`` ``(B, H * wp)``.

    Every shifted window position is a contiguous slice of the flattened planes (results in
    the two wrap-around columns of each row are garbage and are discarded by the caller); the
    network writes into reused buffers (``out=``) to keep memory traffic low.
    """
    n = out.shape[1]  # output rows 0..H-1, all wp columns
    m = n - 2  # positions whose three columns all lie in the buffer
    top, mid, bot = flat[:, :n], flat[:, wp : wp + n], flat[:, 2 * wp : 2 * wp + n]
    # Sort each vertical triple: lo <= me <= hi.
    lo = torch.minimum(top, mid)
    hi = torch.maximum(top, mid)
    me = torch.minimum(hi, bot)
    torch.maximum(hi, bot, out=hi)
    tmp = torch.maximum(lo, me)
    torch.minimum(lo, me, out=lo)
    me = tmp
    # Combine the three columns (horizontal offsets 0, 1, 2) of each window.
    max_lo = out[:, :m]
    torch.maximum(lo[:, :m], lo[:, 1 : m + 1], out=max_lo)
    torch.maximum(max_lo, lo[:, 2:], out=max_lo)
    min_hi = lo[:, :m]  # lo is no longer read
    torch.minimum(hi[:, :m], hi[:, 1 : m + 1], out=min_hi)
    torch.minimum(min_hi, hi[:, 2:], out=min_hi)
    med_me = hi[:, :m]  # hi is no longer read; med3(a, b, c) = max(min(a, b), min(max(a, b), c))
    scratch = torch.minimum(me[:, :m], me[:, 1 : m + 1])
    torch.maximum(me[:, :m], me[:, 1 : m + 1], out=med_me)
    torch.minimum(med_me, me[:, 2:], out=med_me)
    torch.maximum(med_me, scratch, out=med_me)
    # Median of nine = med3(max of lows, median of mids, min of highs), written into out.
    torch.minimum(max_lo, med_me, out=scratch)
    torch.maximum(max_lo, med_me, out=max_lo)
    torch.minimum(max_lo, min_hi, out=max_lo)
    torch.maximum(max_lo, scratch, out=max_lo)


def _median3x3(padded: torch.Tensor) -> torch.Tensor:
    """3x3 median of ``(N, C, H + 2, W + 2)`` padded planes (no autograd).

    On the CPU the planes are processed in blocks of about ``_BLOCK_BYTES`` so the network's
    intermediates stay in cache (6x faster in float64 on 16 x 3 x 299 x 299 than one pass
    over the whole batch, which is memory-bound); on other devices in one pass.
    """
    n_img, ch, hp, wp = padded.shape
    h, w = hp - 2, wp - 2
    flat = padded.reshape(n_img * ch, hp * wp)
    out = flat.new_empty(flat.shape[0], h * wp)
    if flat.device.type == "cpu":
        block = max(1, _BLOCK_BYTES // (hp * wp * flat.element_size()))
    else:
        block = flat.shape[0]
    for start in range(0, flat.shape[0], block):
        _median3x3_block(flat[start : start + block], out[start : start + block], wp)
    return out.view(n_img, ch, h, wp)[..., :w].contiguous()


def median_filter(x: torch.Tensor, kernel: int | tuple[int, int] = (3, 3)) -> torch.Tensor:
    """Per-channel median over a ``kh x kw`` window, equal to scipy's ``median_filter``.

    Equals ``scipy.ndimage.median_filter(img, size=(1, kh, kw), mode="reflect")`` applied to
    each channel-first image (see the module docstring for the window placement of even
    sizes and the upper-middle rank of even counts).

    Args:
        x: images in ``[0, 1]`` (any floating dtype, any device).
        kernel: window size ``k`` (square) or ``(kh, kw)``, each in ``1..MAX_KERNEL``.

    Returns:
        The filtered images (same dtype and device).

    Raises:
        InputError: if ``kernel`` is not a positive integer or a pair of them (at most
            :data:`MAX_KERNEL` each), or one plane's windows exceed the memory budget.
        ShapeError: if ``x`` is not an ``(N, 3, H, W)`` floating tensor.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> x = torch.zeros(1, 3, 3, 3)
        >>> x[0, :, 1, 1] = 1.0  # an isolated bright pixel
        >>> median_filter(x, (3, 3)).abs().max().item()
        0.0
    """
    kh, kw = _check_kernel(kernel)
    check_image(x, "x")
    if kh == 1 and kw == 1:
        return x.clone()
    if (kh, kw) == (3, 3) and not (torch.is_grad_enabled() and x.requires_grad):
        # A one-pixel symmetric border is the edge pixel itself: replicate padding.
        return _median3x3(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"))
    n, c, h, w = x.shape
    per_plane = median_bytes_per_plane(h, w, kh, kw, x.dtype)
    budget = max_memory(x.device)
    if per_plane > budget:
        raise InputError(
            f"a {kh}x{kw} median window on {h}x{w} images needs about {format_bytes(per_plane)} "
            f"per channel, more than the memory budget of {format_bytes(budget)}: use a smaller "
            "window, or raise --max-memory (or ADVSR_MAX_MEMORY)"
        )
    planes = x.reshape(n * c, 1, h, w)
    block = max(1, budget // per_plane)
    rank = kh * kw // 2 + 1
    out = []
    for start in range(0, n * c, block):
        part = planes[start : start + block]
        padded = symmetric_pad(part, kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2)
        windows = padded.unfold(2, kh, 1).unfold(3, kw, 1).flatten(-2)
        out.append(windows.kthvalue(rank, dim=-1).values)
    return torch.cat(out).reshape(n, c, h, w)


class MedianSmoothing(Defense):
    """Median smoothing (Xu et al.'s spatial squeezer), deterministic and differentiable.

    Args:
        kernel: window size ``k`` or ``(kh, kw)``; Xu et al. use 2x2 and 3x3 on ImageNet.

    Raises:
        InputError: if ``kernel`` is not a positive integer or a pair of them, or a side
            exceeds :data:`MAX_KERNEL`.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> MedianSmoothing((2, 2))(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """

    differentiable = True
    stochastic = False

    def __init__(self, kernel: int | tuple[int, int] = (3, 3)) -> None:
        super().__init__()
        self.kernel = _check_kernel(kernel)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Median-filter ``x`` (``generator`` is ignored: the defense is deterministic)."""
        return median_filter(x, self.kernel)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"


Side = Annotated[StrictInt, Field(ge=1, le=MAX_KERNEL)]


def _window(value: object) -> object:
    """``k`` -> ``(k, k)``; a pair is left to the field's validation."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, tuple | list):
        return value
    raise ValueError(f"median size is k or kh x kw (e.g. 3 or 1x3), got {value!r}")


class MedianSettings(DefenseSettings):
    """Settings of ``median``."""

    size: Annotated[tuple[Side, Side], BeforeValidator(_window)] = (3, 3)
    """Window ``k`` or ``kh x kw`` (each side 1..99); Xu et al. use 2x2 and 3x3."""


def build_median(s: MedianSettings) -> MedianSmoothing:
    """Median smoothing over the settings' window."""
    return MedianSmoothing(s.size)


register_defense(
    "median",
    settings=MedianSettings,
    build=build_median,
    description="median smoothing, any kh x kw window (Xu et al.)",
    classes=(MedianSmoothing,),
)
