"""JPEG compression defense (Dziugaite et al. 2016; Das et al. 2017; Guo et al. 2018).

The forward pass is the real codec: each image is rounded to 8 bits (``round(255 x)``, ties
to even), encoded in memory with Pillow's libjpeg(-turbo) at quality ``q`` and decoded again;
the result is moved back to the input's device and dtype. This round trip through numpy/PIL
is the one place where a per-image loop on the CPU is unavoidable (no tensor JPEG codec gives
libjpeg's bytes). Conventions, all Pillow's defaults unless stated:

* **Quality** ``1..100`` scales libjpeg's standard (Annex K) quantisation tables (``5000 / q``
  below 50, ``200 - 2 q`` above); baseline, non-progressive, no optimised Huffman tables
  (these only change the file size, not the pixels).
* **Chroma subsampling** ``"4:2:0"`` by default (Pillow's and libjpeg's default for RGB, so
  what a plain ``Image.save(..., quality=q)`` in published defense code gives); ``"4:2:2"``
  and ``"4:4:4"`` are options.
* **Decoding** uses libjpeg's default IDCT and "fancy" (triangular) chroma upsampling.

JPEG is piecewise constant in the input (integer quantisation), so ``differentiable=False``.
The BPDA ``surrogate`` is a differentiable JPEG, kornia's ``jpeg_codec_differentiable``
(Reich et al. 2024; Shin and Song 2017): the same YCbCr transform, 8x8 DCT and quality-scaled
standard tables, with the cubic rounding ``r + (x - r)^3`` (``r = round(x)``) in place of
rounding. It always models 4:2:0 subsampling (2x2 averaging, bilinear upsampling), also
when ``subsampling`` is set otherwise. On ``skimage.data.astronaut()`` resized to 64x64
(``skimage.transform.resize``, anti-aliased) at ``q=75`` its mean absolute difference to the
real 4:2:0 codec is 0.0067, against 0.026 for the identity surrogate; to the 4:4:4 codec it
is 0.018 (identity: 0.021), so it is a weaker stand-in there.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import torch
from kornia.enhance import jpeg_codec_differentiable
from PIL import Image
from pydantic import Field, StrictInt

from advsr.checks import check_image, check_int_range
from advsr.defenses.base import Defense
from advsr.defenses.registry import DefenseSettings, register_defense
from advsr.errors import InputError

__all__ = ["JPEGCompression", "JPEGSettings", "build_jpeg", "jpeg_compress", "jpeg_surrogate"]

Subsampling = Literal["4:4:4", "4:2:2", "4:2:0"]
_PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _check_quality(quality: object) -> int:
    return check_int_range(quality, "JPEG quality", 1, 100)


def _check_subsampling(subsampling: object) -> str:
    if subsampling not in _PIL_SUBSAMPLING:
        raise InputError(
            f"JPEG subsampling must be one of {sorted(_PIL_SUBSAMPLING)}, got {subsampling!r}"
        )
    return str(subsampling)


def _pil_round_trip(image: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """Encode an ``(H, W, 3)`` uint8 array as JPEG in memory and decode it."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(
        buf, format="JPEG", quality=quality, subsampling=_PIL_SUBSAMPLING[subsampling]
    )
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"))


def jpeg_compress(
    x: torch.Tensor, quality: int = 75, subsampling: Subsampling = "4:2:0"
) -> torch.Tensor:
    """Real JPEG round trip (Pillow/libjpeg) of every image at ``quality``.

    Args:
        x: images in ``[0, 1]`` (values are clamped and rounded to 8 bits first).
        quality: JPEG quality, ``1..100``.
        subsampling: chroma subsampling, ``"4:2:0"`` (default), ``"4:2:2"`` or ``"4:4:4"``.

    Returns:
        The decoded images as multiples of 1/255, on ``x``'s device and dtype.

    Raises:
        InputError: if ``quality`` or ``subsampling`` is invalid.
        ShapeError: if ``x`` is not an ``(N, 3, H, W)`` floating tensor.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> x = torch.full((1, 3, 16, 16), 0.5)
        >>> round(float(jpeg_compress(x, 90).mean()) * 255)
        128
    """
    _check_quality(quality)
    _check_subsampling(subsampling)
    check_image(x, "x")
    codes = torch.round(x.detach().clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    images = codes.permute(0, 2, 3, 1).cpu().numpy()
    decoded = np.stack([_pil_round_trip(img, quality, subsampling) for img in images])
    out = torch.from_numpy(decoded).to(device=x.device).permute(0, 3, 1, 2)
    return out.to(x.dtype) / 255.0


def jpeg_surrogate(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """Differentiable JPEG approximation (kornia, 4:2:0), clamped to ``[0, 1]``.

    Args:
        x: images in ``[0, 1]``.
        quality: JPEG quality, ``1..100``.

    Returns:
        The approximately compressed images, differentiable with respect to ``x``.

    Raises:
        InputError: if ``quality`` is invalid.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.
    """
    _check_quality(quality)
    q = torch.tensor([float(quality)], device=x.device, dtype=x.dtype)
    return jpeg_codec_differentiable(x, q).clamp(0.0, 1.0)


class JPEGCompression(Defense):
    """JPEG compression through the real codec, with a differentiable surrogate for BPDA.

    Args:
        quality: JPEG quality, ``1..100`` (Guo et al. use 75).
        subsampling: chroma subsampling, ``"4:2:0"`` (default), ``"4:2:2"`` or ``"4:4:4"``.

    Raises:
        InputError: if ``quality`` or ``subsampling`` is invalid.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> JPEGCompression(50)(torch.rand(2, 3, 20, 12)).shape
        torch.Size([2, 3, 20, 12])
    """

    differentiable = False
    stochastic = False

    def __init__(self, quality: int = 75, subsampling: Subsampling = "4:2:0") -> None:
        super().__init__()
        self.quality = _check_quality(quality)
        self.subsampling: Subsampling = subsampling
        _check_subsampling(subsampling)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Compress ``x`` (``generator`` is ignored: the codec is deterministic)."""
        return jpeg_compress(x, self.quality, self.subsampling)

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Kornia's differentiable JPEG at the same quality (see :func:`jpeg_surrogate`).

        Shape:
            ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.
        """
        return jpeg_surrogate(x, self.quality)

    def extra_repr(self) -> str:
        return f"quality={self.quality}, subsampling={self.subsampling!r}"


class JPEGSettings(DefenseSettings):
    """Settings of ``jpeg``."""

    quality: StrictInt = Field(75, ge=1, le=100)
    """JPEG quality, 1..100 (Guo et al. use 75)."""
    subsampling: Subsampling = "4:2:0"
    """Chroma subsampling: 4:2:0 (Pillow's default), 4:2:2 or 4:4:4."""


def build_jpeg(s: JPEGSettings) -> JPEGCompression:
    """JPEG compression of its settings."""
    return JPEGCompression(s.quality, s.subsampling)


register_defense(
    "jpeg",
    settings=JPEGSettings,
    build=build_jpeg,
    description="JPEG compression (libjpeg via PIL; BPDA through kornia's)",
    classes=(JPEGCompression,),
)
