"""Resizing defenses: random resize + padding, interpolation resizing, SR purification.

* :class:`RandomResizePad` (Xie et al. 2018, "Mitigating adversarial effects through
  randomization"): resize the ``H x W`` image to a random ``h' x w'`` with
  ``H <= h' < H * ratio`` by nearest neighbour (the reference code's TF
  ``NEAREST_NEIGHBOR``, source index ``floor(dst * in / out)``), then place it at a random
  position in a zero canvas of ``round(H * ratio) x round(W * ratio)``; ``ratio = 331 / 299``
  as in the paper (299 -> [299, 331) -> 331). The output is larger than the input, as in the
  paper (the classifier must accept it: global-pooling networks do). One batched gather
  does every image with its own size and position.
* :class:`Interpolation`: nearest / bilinear / bicubic resizing by ``factor``: ``up`` (the
  SR-defense paper's interpolation baselines, output ``factor`` times larger), ``up-down``
  and ``down-up`` (back to the input size). Downscaling is antialiased for bilinear and
  bicubic (as PIL and MATLAB do); pass ``antialias=False`` for plain sampling.
* :class:`SRPurification` (Mustafa et al. 2019, Algorithm 1): optional wavelet denoising,
  then an SR model at scale ``S`` (default 2); the super-resolved image is what the
  classifier sees (``output="sr"``, the paper) or it is resized back to the input size with
  MATLAB bicubic (``output="input"``, for classifiers with a fixed input size).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, StrictInt
from torch import nn

from advsr.checks import check_image, check_int_range
from advsr.defenses.base import Defense
from advsr.defenses.registry import DefenseSettings, register_defense
from advsr.errors import InputError
from advsr.imaging.resize import imresize
from advsr.settings import MODEL, WEIGHTS

__all__ = [
    "MAX_FACTOR",
    "MAX_RATIO",
    "MAX_SR_SCALE",
    "Interpolation",
    "InterpolationSettings",
    "RandomResizePad",
    "ResizePadSettings",
    "SRPurification",
    "SRSettings",
    "build_interpolation",
    "build_resize_pad",
    "build_sr",
    "random_resize_pad",
]

MAX_RATIO = 4.0
"""The largest resize-pad canvas ratio (Xie et al. use 331/299; the output is this much
larger on each side)."""
MAX_FACTOR = 16.0
"""The largest interpolation factor (the SR-defense baselines use 2 to 4)."""
MAX_SR_SCALE = 16
"""The largest SR purification scale."""


def _check_ratio(value: object, name: str, bound: float) -> float:
    """A finite number in ``(1, bound]``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not 1.0 < v <= bound:  # also refuses nan and inf
        raise InputError(f"{name} must be > 1 and at most {bound:g}, got {value!r}")
    return v


def random_resize_pad(
    x: torch.Tensor,
    sizes: torch.Tensor,
    offsets: torch.Tensor,
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Nearest-neighbour resize of each image to ``sizes[i]``, placed at ``offsets[i]``.

    Args:
        x: images.
        sizes: ``(N, 2)`` integer target sizes ``(h', w')``.
        offsets: ``(N, 2)`` integer top-left positions in the canvas.
        out_size: canvas size ``(Ho, Wo)``; the rest of the canvas is 0.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, Ho, Wo)``.
    """
    n, _, h, w = x.shape
    dev = x.device
    sizes, offsets = sizes.to(dev), offsets.to(dev)
    rows = torch.arange(out_size[0], device=dev)[None, :] - offsets[:, :1]  # (N, Ho)
    cols = torch.arange(out_size[1], device=dev)[None, :] - offsets[:, 1:]  # (N, Wo)
    vr = (rows >= 0) & (rows < sizes[:, :1])
    vc = (cols >= 0) & (cols < sizes[:, 1:])
    sr = (rows.clamp(min=0) * h).div(sizes[:, :1], rounding_mode="floor").clamp(max=h - 1)
    sc = (cols.clamp(min=0) * w).div(sizes[:, 1:], rounding_mode="floor").clamp(max=w - 1)
    idx = torch.arange(n, device=dev)[:, None, None]
    out = x.permute(0, 2, 3, 1)[idx, sr[:, :, None], sc[:, None, :]]  # (N, Ho, Wo, C)
    valid = (vr[:, :, None] & vc[:, None, :]).unsqueeze(-1).to(x.dtype)
    return (out * valid).permute(0, 3, 1, 2)


class RandomResizePad(Defense):
    """Xie et al.'s random resizing and zero padding (see the module docstring).

    Args:
        ratio: canvas size over input size (331/299 in the paper); > 1.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, round(H * ratio), round(W * ratio))``.

    Example:
        >>> d = RandomResizePad()
        >>> d(torch.rand(2, 3, 299, 299), torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 331, 331])
    """

    stochastic = True
    differentiable = True  # a gather: the gradient flows to the sampled pixels

    def __init__(self, ratio: float = 331 / 299) -> None:
        super().__init__()
        self.ratio = _check_ratio(ratio, "resize-pad ratio", MAX_RATIO)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """``round(H * ratio), round(W * ratio)`` (at least one pixel more)."""
        return max(round(h * self.ratio), h + 1), max(round(w * self.ratio), w + 1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_image(x, "x")
        n, _, h, w = x.shape
        oh, ow = self.output_size(h, w)
        # one random size per image (aspect kept), then a random position in the canvas
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        hs = (h + (u * (oh - h)).floor()).long().clamp(max=oh - 1)
        ws = (w + (u * (ow - w)).floor()).long().clamp(max=ow - 1)
        top = (torch.rand(n, generator=generator, dtype=torch.float64) * (oh - hs + 1)).floor()
        left = (torch.rand(n, generator=generator, dtype=torch.float64) * (ow - ws + 1)).floor()
        sizes = torch.stack([hs, ws], 1)
        offsets = torch.stack([top.long(), left.long()], 1)
        return random_resize_pad(x, sizes, offsets, (oh, ow))


_MODES = ("nearest", "bilinear", "bicubic")
_DIRECTIONS = ("up", "up-down", "down-up")


class Interpolation(Defense):
    """Interpolation resizing (see the module docstring).

    Args:
        mode: ``nearest``, ``bilinear`` or ``bicubic``.
        factor: resize factor (> 1).
        direction: ``up`` (output ``factor`` times larger), ``up-down`` or ``down-up``.
        antialias: antialias downscaling (bilinear/bicubic).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, fH, fW)`` for ``up``, else the input shape.
    """

    def __init__(
        self,
        mode: str = "bicubic",
        factor: float = 2.0,
        direction: str = "up",
        antialias: bool = True,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise InputError(f"unknown interpolation {mode!r}; use one of {', '.join(_MODES)}")
        if direction not in _DIRECTIONS:
            raise InputError(
                f"unknown direction {direction!r}; use one of {', '.join(_DIRECTIONS)}"
            )
        self.factor = _check_ratio(factor, "interpolation factor", MAX_FACTOR)
        self.mode, self.direction = mode, direction
        self.antialias = bool(antialias)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Larger by ``factor`` for ``up``, unchanged otherwise."""
        if self.direction == "up":
            return round(h * self.factor), round(w * self.factor)
        return h, w

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        down = size[0] < x.shape[-2]
        kw: dict[str, object] = {}
        if self.mode != "nearest":
            kw = {"align_corners": False, "antialias": self.antialias and down}
        return F.interpolate(x, size=size, mode=self.mode, **kw)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_image(x, "x")
        h, w = x.shape[-2:]
        big = (round(h * self.factor), round(w * self.factor))
        if self.direction == "up":
            y = self._resize(x, big)
        elif self.direction == "up-down":
            y = self._resize(self._resize(x, big), (h, w))
        else:
            small = (max(1, round(h / self.factor)), max(1, round(w / self.factor)))
            y = self._resize(self._resize(x, small), (h, w))
        return y.clamp(0.0, 1.0)


class SRPurification(Defense):
    """Wavelet denoising (optional) then super-resolution (Mustafa et al., Algorithm 1).

    Args:
        sr_model: an SR model ``(N, 3, h, w) -> (N, 3, S h, S w)`` on ``[0, 1]`` images.
        scale: its factor ``S``.
        denoise: a defense applied first (the paper: BayesShrink soft wavelet denoising);
            None for SR alone.
        output: ``sr`` (feed the super-resolved image, the paper) or ``input`` (resize it
            back to the input size, MATLAB bicubic).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, S H, S W)`` (``output="sr"``) or ``(N, 3, H, W)``.
    """

    def __init__(
        self,
        sr_model: nn.Module,
        scale: int = 2,
        denoise: Defense | None = None,
        output: Literal["sr", "input"] = "sr",
    ) -> None:
        super().__init__()
        if output not in ("sr", "input"):
            raise InputError(f"SR purification output must be 'sr' or 'input', got {output!r}")
        self.sr_model = sr_model.eval()
        self.denoise = denoise
        self.sr_scale = check_int_range(scale, "SR purification scale", 1, MAX_SR_SCALE)
        self.output = output
        self.scale = self.sr_scale if output == "sr" else 1

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        """Differentiable when the denoiser is (the SR model always is)."""
        return self.denoise is None or self.denoise.differentiable

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_image(x, "x")
        y = self.denoise(x, generator) if self.denoise is not None else x
        y = self.sr_model(y).clamp(0.0, 1.0)
        if self.output == "input":
            y = imresize(y, size=(x.shape[-2], x.shape[-1])).clamp(0.0, 1.0)
        return y

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """The SR path without the denoiser (BPDA through a non-differentiable denoiser)."""
        y = self.sr_model(x).clamp(0.0, 1.0)
        if self.output == "input":
            y = imresize(y, size=(x.shape[-2], x.shape[-1])).clamp(0.0, 1.0)
        return y


class ResizePadSettings(DefenseSettings):
    """Settings of ``resize-pad``."""

    ratio: float = Field(331 / 299, gt=1.0, le=MAX_RATIO)
    """Canvas size over input size (Xie et al.: 331/299)."""


def build_resize_pad(s: ResizePadSettings) -> RandomResizePad:
    """Random resize + padding of its settings."""
    return RandomResizePad(s.ratio)


class InterpolationSettings(DefenseSettings):
    """Settings of ``interpolation``."""

    mode: Literal["nearest", "bilinear", "bicubic"] = "bicubic"
    """Interpolation kernel."""
    factor: float = Field(2.0, gt=1.0, le=MAX_FACTOR)
    """Resize factor (> 1)."""
    direction: Literal["up", "up-down", "down-up"] = "up"
    """up (output factor times larger), up-down or down-up (back to the input size)."""
    antialias: bool = True
    """Antialias downscaling (bilinear and bicubic)."""


def build_interpolation(s: InterpolationSettings) -> Interpolation:
    """Interpolation resizing of its settings."""
    return Interpolation(s.mode, s.factor, s.direction, s.antialias)


class SRSettings(DefenseSettings):
    """Settings of ``sr`` (Mustafa et al.'s Algorithm 1)."""

    model: Annotated[str, MODEL] = "demo-edsr"
    """SR model of the zoo (``advsr list models``)."""
    scale: StrictInt = Field(2, ge=1, le=MAX_SR_SCALE)
    """Its scale factor."""
    weights: Annotated[str | None, WEIGHTS] = None
    """Weight file (none: the bundled weights, where the model has them)."""
    denoise: Literal["wavelet", "none"] | None = "wavelet"
    """Denoiser applied first: wavelet (the ``wavelet`` defense's defaults) or none."""
    sigma: float = Field(0.04, ge=0.0)
    """Noise std of the wavelet denoiser."""
    output: Literal["sr", "input"] = "sr"
    """sr (the super-resolved image, the paper) or input (resized back, MATLAB bicubic)."""


def build_sr(s: SRSettings) -> SRPurification:
    """SR purification of its settings.

    Raises:
        InputError: a model without bundled weights at that scale and no ``weights``
            (random weights would purify nothing).
    """
    from advsr.defenses.wavelet import WaveletSettings, build_wavelet
    from advsr.models.sr import SR_MODELS, create_sr_model

    entry = SR_MODELS.get(s.model)
    if s.weights is None and entry.needs_weights and s.scale not in entry.bundled:
        raise InputError(
            f"sr purification with {s.model} x{s.scale} needs weights=FILE (no bundled weights; "
            "random weights would purify nothing)"
        )
    sr_model = create_sr_model(s.model, s.scale, s.weights)
    pre = build_wavelet(WaveletSettings(sigma=s.sigma)) if s.denoise == "wavelet" else None
    return SRPurification(sr_model, s.scale, pre, s.output)


register_defense(
    "resize-pad",
    settings=ResizePadSettings,
    build=build_resize_pad,
    description="random resize + zero padding (Xie et al. 2018)",
    classes=(RandomResizePad,),
)
register_defense(
    "interpolation",
    settings=InterpolationSettings,
    build=build_interpolation,
    description="nearest/bilinear/bicubic: up, up-down, down-up",
    classes=(Interpolation,),
)
register_defense(
    "sr",
    settings=SRSettings,
    build=build_sr,
    description="wavelet denoising + super-resolution (Mustafa et al. 2019, Alg. 1)",
    classes=(SRPurification,),
)
