"""Backdoor triggers for the reference image of reference-based SR (BadRefSR).

BadRefSR (``shared/papers/badrefsr_backdoor_refsr.txt``, sec. III-C) poisons a RefSR model by
adding a trigger to the reference image ``Ref`` only (the LR input is untouched). It uses six
triggers from the classification literature; each is a small frozen dataclass holding its
settings, callable as ``trigger(ref, generator=None)`` on a batch ``(N, 3, H, W)`` in [0, 1]
and returning the same shape in [0, 1]. All are pure, batched, device-agnostic torch. None
draws randomness per call (a trigger is a fixed pattern); WaNet draws its warping field once
from its ``seed``. Conventions (the paper gives few settings):

* **badnets** (Gu et al. 2019): a white square in the lower-right corner, as in BadRefSR.
  The paper states no size: ``size`` is a fraction of the shorter side (float in (0, 1),
  default 0.1, i.e. 16 px on the paper's 160 x 160 images) or pixels (int); ``margin`` pixels
  from the border (default 0).
* **blend** (Chen et al. 2017): ``(1 - alpha) * ref + alpha * key`` with ``alpha = 0.05``
  (BadRefSR: "5% trigger images with 95% clean Ref"). The paper's key is a cartoon image
  (not given); the default here is scikit-image's ``chelsea`` (a cat photo bundled with
  scikit-image, no download). A user key (tensor or image path) is resized to the Ref size
  with MATLAB bicubic :func:`advsr.imaging.resize.imresize` and clamped to [0, 1].
* **filter** (Liu et al. 2019, Instagram filters): the paper used ``instafilter``; this is a
  port of pilgram's "1977" filter (the CSS-gram recipe): ``screen`` blend with the colour
  (243, 106, 188) at opacity round(0.3 * 255) / 255, then ``contrast(1.1)``,
  ``brightness(1.1)``, ``saturate(1.3)`` (the CSS/SVG saturation matrix), clamping to [0, 1]
  after each step as pilgram's 8-bit images do. pilgram rounds to 8 bits after every step;
  this port stays in float, so it agrees with pilgram to a few 8-bit levels (tested).
  ``strength`` interpolates between the clean and the filtered image (1 = the filter).
* **color** (Jiang et al. 2023, "Color Backdoor"): a uniform shift of every pixel in RGB,
  ``clamp(ref + offset)``. Jiang et al. search the offset by particle-swarm optimisation per
  dataset; BadRefSR gives none, so the default ``(0.08, -0.04, 0.06)`` is an arbitrary
  mild shift (set your own).
* **wanet** (Nguyen & Tran 2021): a ``k x k`` field of offsets uniform in [-1, 1] drawn from
  ``seed``, divided by its mean absolute value, upsampled bicubically (align_corners=True) to
  ``H x W``, scaled by ``s / H`` (the reference code divides both axes by the height; images
  there are square), added to the identity grid, clamped to [-1, 1] and applied with
  bilinear ``grid_sample(align_corners=True)``. Defaults ``k = 4``, ``s = 0.5`` (WaNet's).
  One trigger = one field, the same for every image.
* **refool** (Liu et al. 2020): reflection ``R`` (default scikit-image's ``coffee``) resized
  to the Ref size, both linearised with gamma 2.2, following the reference
  ``blend_images``. ``mode="ghost"``: ``G = g * R_1 + (1 - g) * R_2`` where ``R_1``/``R_2``
  are ``R`` padded with zeros by ``offset`` at the bottom-right/top-left, cropped by
  ``offset`` on every side and resized back (bicubic here, cv2 bilinear there); output
  ``(alpha_t * T + (1 - alpha_t) * G) ** (1 / 2.2)``. ``mode="blur"``: ``R`` blurred by a
  Gaussian (``sigma``, kernel ``2 * ceil(2 sigma) + 1``, reflect-101 borders as cv2); per
  image and channel the blurred R is lowered by ``(m - 1) * att`` where ``m`` is the mean of
  ``T + R_blur`` over its pixels above 1 (``m >= 1``), clamped, weighted by a Gaussian
  vignette ``mask * (1 - alpha_t / 2)`` and added: ``(alpha_t T + mask' R_blur) ** (1/2.2)``.
  The reference draws ``alpha_t``, offsets, ``g``, ``sigma``, ``att`` and the vignette
  position at random per image; here they are fixed settings (defaults at the middle of the
  reference ranges: ``alpha_t = 0.75``, offset (5, 5), ``g = 0.3``, ``sigma = 3``,
  ``att = 1.13``) and the vignette (std 80 px of a sqrt-Gaussian, as the reference's 560-px
  kernel with 3 sigma) is centred.

:func:`stealthiness` measures PSNR / SSIM (RGB, :mod:`advsr.metrics`) of the triggered Ref
against the clean one. The paper reports metrics on Y for SR outputs only.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from advsr.checks import check_image
from advsr.errors import InputError
from advsr.registry import Registry
from advsr.settings import FILE

__all__ = [
    "TRIGGERS",
    "BadNets",
    "Blend",
    "Color",
    "Filter1977",
    "Refool",
    "Trigger",
    "WaNet",
    "create_trigger",
    "stealthiness",
    "trigger_files",
    "trigger_identity",
    "trigger_label",
]

ImageSource = torch.Tensor | str | os.PathLike[str] | None
ImageFile = Annotated[ImageSource, FILE]
"""A trigger setting that may name an image file (identified by its content)."""


def _number(value: object, name: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """``value`` as a float in ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``) or InputError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        span = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise InputError(f"{name} must be in {span}, got {value!r}")
    return v


def _int(value: object, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


def _load_source(source: ImageSource, default: str, name: str) -> torch.Tensor:
    """A ``(1, 3, h, w)`` float32 image from a tensor, a path or a scikit-image sample."""
    from advsr.io import array_to_image, read_image

    if source is None:
        import skimage.data

        return array_to_image(np.ascontiguousarray(getattr(skimage.data, default)()))
    if isinstance(source, torch.Tensor):
        t = source.unsqueeze(0) if source.ndim == 3 else source
        check_image(t, name, check_range=True)
        if t.shape[0] != 1:
            raise InputError(f"{name} must be one image, got a batch of {t.shape[0]}")
        return t.detach().to(torch.float32)
    if isinstance(source, str | os.PathLike):
        return read_image(source)
    raise InputError(f"{name} must be a tensor, an image path or None, got {type(source).__name__}")


def _fit(img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``img`` resized (MATLAB bicubic) to the size of ``ref``, clamped, on its device/dtype."""
    from advsr.imaging.resize import imresize

    h, w = int(ref.shape[-2]), int(ref.shape[-1])
    out = img.to(device=ref.device, dtype=ref.dtype)
    if tuple(out.shape[-2:]) != (h, w):
        out = imresize(out, size=(h, w))
    return out.clamp(0.0, 1.0)


@dataclass(frozen=True)
class Trigger:
    """Base of all triggers: validates the batch, applies :meth:`apply`, clamps to [0, 1]."""

    name: ClassVar[str] = "trigger"

    def __call__(self, ref: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Add the trigger to a batch of reference images.

        Args:
            ref: clean reference images in [0, 1].
            generator: unused by the built-in triggers (they are fixed patterns); kept for
                triggers that draw per call.

        Returns:
            the triggered batch in [0, 1], same dtype and device.

        Raises:
            ShapeError: ``ref`` is not a floating ``(N, 3, H, W)`` tensor.

        Shape:
            ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.
        """
        check_image(ref, "ref")
        return self.apply(ref, generator).clamp(0.0, 1.0)

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class BadNets(Trigger):
    """A white square in the lower-right corner of the Ref.

    Args:
        size: side as a fraction of the shorter image side (float in (0, 1]) or in pixels
            (int >= 1).
        margin: pixels between the square and the bottom/right borders.
        value: grey level of the square (1 = white).

    Example:
        >>> t = BadNets(size=4)
        >>> y = t(torch.zeros(1, 3, 16, 16))
        >>> float(y[0, :, 12:, 12:].min()), float(y.sum()) == 3 * 16
        (1.0, True)
    """

    name: ClassVar[str] = "badnets"
    size: float | int = 0.1
    margin: int = 0
    value: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.size, int) and not isinstance(self.size, bool):
            _int(self.size, "badnets size", 1)
        else:
            _number(self.size, "badnets size (fraction)", 0.0, 1.0, lo_open=True)
        _int(self.margin, "badnets margin", 0)
        _number(self.value, "badnets value", 0.0, 1.0)

    def side(self, h: int, w: int) -> int:
        """Square side in pixels for an ``h x w`` image (at least 1)."""
        if isinstance(self.size, int):
            return self.size
        return max(1, round(self.size * min(h, w)))

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        h, w = int(ref.shape[-2]), int(ref.shape[-1])
        s = self.side(h, w)
        if s + self.margin > min(h, w):
            raise InputError(f"badnets square {s} px + margin {self.margin} exceeds {h}x{w}")
        out = ref.clone()
        y1, x1 = h - self.margin, w - self.margin
        out[..., y1 - s : y1, x1 - s : x1] = self.value
        return out


@dataclass(frozen=True)
class Blend(Trigger):
    """Blend a key image into the Ref: ``(1 - alpha) * ref + alpha * key``.

    Args:
        alpha: weight of the key (0.05 in BadRefSR).
        key: a ``(1, 3, h, w)``/``(3, h, w)`` tensor in [0, 1], an image path, or None for
            scikit-image's ``chelsea``; resized to the Ref size (MATLAB bicubic), clamped.

    Example:
        >>> Blend(alpha=0.0)(torch.full((1, 3, 8, 8), 0.5)).unique().tolist()
        [0.5]
    """

    name: ClassVar[str] = "blend"
    alpha: float = 0.05
    key: ImageFile = field(default=None, compare=False, repr=False)
    _key: torch.Tensor = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        _number(self.alpha, "blend alpha", 0.0, 1.0)
        object.__setattr__(self, "_key", _load_source(self.key, "chelsea", "blend key"))

    def key_for(self, ref: torch.Tensor) -> torch.Tensor:
        """The key resized to ``ref``'s size, dtype and device, ``(1, 3, H, W)``."""
        return _fit(self._key, ref)

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return (1.0 - self.alpha) * ref + self.alpha * self.key_for(ref)


def _saturate_matrix(amount: float) -> list[list[float]]:
    """The CSS/SVG ``saturate`` colour matrix (rows give R', G', B')."""
    a = amount
    return [
        [0.213 + 0.787 * a, 0.715 - 0.715 * a, 0.072 - 0.072 * a],
        [0.213 - 0.213 * a, 0.715 + 0.285 * a, 0.072 - 0.072 * a],
        [0.213 - 0.213 * a, 0.715 - 0.715 * a, 0.072 + 0.928 * a],
    ]


def filter_1977(x: torch.Tensor) -> torch.Tensor:
    """pilgram's "1977" Instagram filter in float (no 8-bit rounding between steps).

    Args:
        x: images in [0, 1].

    Returns:
        the filtered images in [0, 1].

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.
    """
    colour = torch.tensor([243.0, 106.0, 188.0], device=x.device, dtype=x.dtype) / 255.0
    colour = colour.view(1, 3, 1, 1)
    opacity = round(0.3 * 255) / 255.0
    screen = 1.0 - (1.0 - x) * (1.0 - colour)
    y = (opacity * screen + (1.0 - opacity) * x).clamp(0.0, 1.0)
    y = ((y - 0.5) * 1.1 + 0.5).clamp(0.0, 1.0)  # contrast(1.1)
    y = (y * 1.1).clamp(0.0, 1.0)  # brightness(1.1)
    m = torch.tensor(_saturate_matrix(1.3), device=x.device, dtype=x.dtype)
    return torch.einsum("oc,nchw->nohw", m, y).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Filter1977(Trigger):
    """Instagram-style "1977" filter (a port of pilgram's), optionally weakened.

    Args:
        strength: ``(1 - strength) * ref + strength * filter(ref)``; 1 is the filter.

    Example:
        >>> Filter1977()(torch.zeros(1, 3, 2, 2))[0, :, 0, 0].shape
        torch.Size([3])
    """

    name: ClassVar[str] = "filter"
    strength: float = 1.0

    def __post_init__(self) -> None:
        _number(self.strength, "filter strength", 0.0, 1.0)

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return ref + self.strength * (filter_1977(ref) - ref)


@dataclass(frozen=True)
class Color(Trigger):
    """Uniform RGB shift of every pixel: ``clamp(ref + offset)``.

    Args:
        offset: the (R, G, B) shift, each in [-1, 1].

    Example:
        >>> Color(offset=(0.1, 0.0, -0.1))(torch.full((1, 3, 1, 1), 0.5)).flatten().tolist()
        [0.6000000238418579, 0.5, 0.4000000059604645]
    """

    name: ClassVar[str] = "color"
    offset: tuple[float, float, float] = (0.08, -0.04, 0.06)

    def __post_init__(self) -> None:
        if not isinstance(self.offset, tuple | list) or len(self.offset) != 3:
            raise InputError(f"color offset must be three numbers (R, G, B), got {self.offset!r}")
        vals = tuple(_number(v, "color offset", -1.0, 1.0) for v in self.offset)
        object.__setattr__(self, "offset", vals)

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        off = torch.tensor(self.offset, device=ref.device, dtype=ref.dtype).view(1, 3, 1, 1)
        return ref + off


@dataclass(frozen=True)
class WaNet(Trigger):
    """WaNet's fixed smooth warping field applied with ``grid_sample``.

    Args:
        k: control grid size (WaNet: 4).
        s: warping strength (WaNet: 0.5); 0 is the identity.
        seed: seed of the control grid (drawn once, at construction).

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> bool(torch.allclose(WaNet(s=0.0)(x), x, atol=1e-5))
        True
    """

    name: ClassVar[str] = "wanet"
    k: int = 4
    s: float = 0.5
    seed: int = 0
    _grid: torch.Tensor = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        _int(self.k, "wanet k", 2)
        _number(self.s, "wanet s", 0.0, 1e3)
        _int(self.seed, "wanet seed", 0)
        g = torch.Generator().manual_seed(self.seed)
        ins = torch.rand(1, 2, self.k, self.k, generator=g, dtype=torch.float64) * 2 - 1
        object.__setattr__(self, "_grid", ins / ins.abs().mean())

    def flow(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The sampling grid ``(1, H, W, 2)`` (x, y in [-1, 1]) for an ``h x w`` image."""
        noise = F.interpolate(self._grid, size=(h, w), mode="bicubic", align_corners=True)
        noise = noise.permute(0, 2, 3, 1).to(device=device, dtype=dtype)
        ys = torch.linspace(-1, 1, h, device=device, dtype=dtype)
        xs = torch.linspace(-1, 1, w, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        identity = torch.stack((gx, gy), dim=-1).unsqueeze(0)
        return (identity + self.s * noise / h).clamp(-1.0, 1.0)

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, _, h, w = ref.shape
        grid = self.flow(h, w, ref.device, ref.dtype).expand(n, h, w, 2)
        return F.grid_sample(ref, grid, mode="bilinear", align_corners=True)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """cv2.GaussianBlur-like separable blur, kernel ``2 ceil(2 sigma) + 1``, reflect-101."""
    size = int(2 * math.ceil(2 * sigma) + 1)
    r = size // 2
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    ph, pw = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    if ph < r or pw < r:
        raise InputError(f"refool sigma {sigma} is too large for a {tuple(x.shape[-2:])} image")
    y = F.pad(x, (0, 0, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)
    y = F.pad(y, (r, r, 0, 0), mode="reflect")
    return F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)


@dataclass(frozen=True)
class Refool(Trigger):
    """Refool reflection trigger: ghost or out-of-focus reflection blended into the Ref.

    Args:
        mode: ``"ghost"`` (two shifted copies) or ``"blur"`` (Gaussian-blurred reflection).
        alpha_t: weight of the transmission (the Ref) in linear light, in (0, 1].
        offset: ``(dy, dx)`` shift of the ghost copy in pixels (>= 1 each).
        ghost_alpha: mix ``g`` of the two ghost copies, in [0, 1].
        sigma: Gaussian blur of the reflection (blur mode), > 0.
        att: attenuation of the over-exposed part (blur mode; reference 1.08..1.18).
        vignette_sigma: pixels of the centred sqrt-Gaussian reflection mask (blur mode);
            0 disables the mask.
        reflection: a tensor, image path or None for scikit-image's ``coffee``.

    Example:
        >>> Refool(alpha_t=1.0)(torch.full((1, 3, 16, 16), 0.5)).sub(0.5).abs().max() < 1e-5
        tensor(True)
    """

    name: ClassVar[str] = "refool"
    mode: Literal["ghost", "blur"] = "ghost"
    alpha_t: float = 0.75
    offset: tuple[int, int] = (5, 5)
    ghost_alpha: float = 0.3
    sigma: float = 3.0
    att: float = 1.13
    vignette_sigma: float = 80.0
    reflection: ImageFile = field(default=None, compare=False, repr=False)
    _refl: torch.Tensor = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("ghost", "blur"):
            raise InputError(f"refool mode must be 'ghost' or 'blur', got {self.mode!r}")
        _number(self.alpha_t, "refool alpha_t", 0.0, 1.0, lo_open=True)
        if not isinstance(self.offset, tuple | list) or len(self.offset) != 2:
            raise InputError(f"refool offset must be (dy, dx), got {self.offset!r}")
        off = (_int(self.offset[0], "refool offset", 1), _int(self.offset[1], "refool offset", 1))
        object.__setattr__(self, "offset", off)
        _number(self.ghost_alpha, "refool ghost_alpha", 0.0, 1.0)
        _number(self.sigma, "refool sigma", 0.0, 100.0, lo_open=True)
        _number(self.att, "refool att", 0.0, 10.0)
        _number(self.vignette_sigma, "refool vignette_sigma", 0.0, 1e6)
        refl = _load_source(self.reflection, "coffee", "refool reflection")
        object.__setattr__(self, "_refl", refl)

    def _ghost(self, r: torch.Tensor) -> torch.Tensor:
        from advsr.imaging.resize import imresize

        dy, dx = self.offset
        h, w = int(r.shape[-2]), int(r.shape[-1])
        if dy >= h or dx >= w:
            raise InputError(f"refool offset {self.offset} too large for a {h}x{w} image")
        r1 = F.pad(r, (0, dx, 0, dy))
        r2 = F.pad(r, (dx, 0, dy, 0))
        g = self.ghost_alpha * r1 + (1.0 - self.ghost_alpha) * r2
        return imresize(g[..., dy:-dy, dx:-dx], size=(h, w))

    def _vignette(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        if self.vignette_sigma == 0:
            return torch.ones(1, 1, h, w, device=like.device, dtype=like.dtype)
        ys = torch.arange(h, device=like.device, dtype=like.dtype) - (h - 1) / 2
        xs = torch.arange(w, device=like.device, dtype=like.dtype) - (w - 1) / 2
        d2 = ys.view(-1, 1) ** 2 + xs.view(1, -1) ** 2
        return torch.exp(-d2 / (4 * self.vignette_sigma**2)).view(1, 1, h, w)

    def apply(self, ref: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        t = ref.clamp(0.0, 1.0) ** 2.2
        r = _fit(self._refl, ref) ** 2.2
        a = self.alpha_t
        if self.mode == "ghost":
            blended = a * t + (1.0 - a) * self._ghost(r)
        else:
            rb = _gaussian_blur(r, self.sigma)
            s = t + rb  # (N, 3, H, W) by broadcasting
            over = s > 1
            mean = (s * over).sum(dim=(-2, -1)) / (over.sum(dim=(-2, -1)) + 1e-6)
            mean = mean.clamp(min=1.0).unsqueeze(-1).unsqueeze(-1)
            rb = (rb - (mean - 1.0) * self.att).clamp(0.0, 1.0)
            mask = self._vignette(ref.shape[-2], ref.shape[-1], ref) * (1.0 - a / 2.0)
            blended = a * t + rb * mask
        return blended.clamp(min=0.0) ** (1.0 / 2.2)


TRIGGERS: Registry[type[Trigger]] = Registry("trigger")
for _cls, _help in (
    (BadNets, "white square in the lower-right corner (Gu et al. 2019)"),
    (Blend, "alpha-blend a key image, alpha 0.05 (Chen et al. 2017)"),
    (Filter1977, "Instagram '1977' filter, port of pilgram (Liu et al. 2019)"),
    (Color, "uniform RGB shift of all pixels (Jiang et al. 2023)"),
    (WaNet, "smooth fixed warping field, k=4, s=0.5 (Nguyen & Tran 2021)"),
    (Refool, "ghost / blurred reflection of another image (Liu et al. 2020)"),
):
    TRIGGERS.register(_cls.name, _cls, _help)


def _trigger_roles(spec: str) -> dict[str, str]:
    from advsr.defenses.registry import parse_spec
    from advsr.settings import file_roles

    cls: Any = TRIGGERS.get(parse_spec(spec)[0])  # a class: hashable, as file_roles caches
    return file_roles(cls)


def trigger_identity(spec: str) -> str:
    """A trigger spec as a cell's identity holds it: as written, or, when it names image
    files (``blend:key=FILE``), canonical with each file replaced by its content hash."""
    from advsr.files import spec_files, spec_identity

    roles = _trigger_roles(spec)
    return spec_identity(spec, roles) if spec_files(spec, roles) else spec


def trigger_label(spec: str) -> str:
    """A trigger spec as tables show it (files by name and short hash, no paths)."""
    from advsr.files import spec_files, spec_label

    roles = _trigger_roles(spec)
    return spec_label(spec, roles) if spec_files(spec, roles) else spec


def trigger_files(spec: str) -> list[dict[str, Any]]:
    """The provenance entries (path, size, sha256) of the image files a trigger spec names."""
    from advsr.files import spec_files

    return spec_files(spec, _trigger_roles(spec), "trigger.")


def create_trigger(name: str, **settings: Any) -> Trigger:
    """Build a registered trigger from its name and settings.

    Args:
        name: a name in :data:`TRIGGERS` (case-insensitive).
        settings: the trigger's dataclass fields.

    Returns:
        the trigger.

    Raises:
        UnknownNameError: unknown trigger (with a did-you-mean hint).
        InputError: unknown setting or a bad value.

    Example:
        >>> create_trigger("blend", alpha=0.1).alpha
        0.1
    """
    cls = TRIGGERS.get(name)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in settings:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(
                f"{cls.name} has no setting {key!r}{hint}; settings: {', '.join(valid)}"
            )
    try:
        return cls(**settings)
    except TypeError as exc:
        raise InputError(f"bad settings for {cls.name}: {exc}") from None


def stealthiness(
    trigger: Trigger, ref: torch.Tensor, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """PSNR (dB, peak 255) and SSIM (RGB) of the triggered Ref against the clean Ref.

    Args:
        trigger: a trigger.
        ref: clean reference images in [0, 1] (at least 11 x 11 for SSIM).
        generator: passed to the trigger.

    Returns:
        ``{"psnr": (N,), "ssim": (N,)}`` float64 tensors (PSNR ``inf`` if unchanged).

    Shape:
        ``(N, 3, H, W)`` -> ``(N,)`` each.

    Example:
        >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> stealthiness(BadNets(size=2), x)["psnr"].shape
        torch.Size([2])
    """
    from advsr.metrics import psnr, ssim

    check_image(ref, "ref", check_range=True)
    out = trigger(ref, generator)
    return {"psnr": psnr(out, ref), "ssim": ssim(out, ref)}
