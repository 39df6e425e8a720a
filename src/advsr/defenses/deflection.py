"""Pixel Deflection (Prakash et al., "Deflecting Adversarial Attacks with Pixel Deflection",
CVPR 2018): corrupt the image with many local pixel swaps, then wavelet-denoise it.

``deflections`` times, a random pixel is picked and one of its channels is replaced by the
same channel of a random pixel in a ``(2 window + 1)^2`` neighbourhood; the result is denoised
by BayesShrink soft wavelet shrinkage in YCbCr (:class:`advsr.defenses.wavelet.WaveletDenoise`).

Behaviour of the reference code (github.com/iamaaditya/pixel-deflection, ``methods.py`` and
``main.py``) and what is followed here:

* Defaults: ``deflections = 200``, ``window = 10``, ``sigma = 0.04`` (``main.py``; images are
  224 x 224 there). Followed.
* One channel per deflection, cycling R, G, B. Followed. The reference loops
  ``while deflections > 0: for c in (R, G, B)``, so it runs ``3 ceil(deflections / 3)``
  single-channel deflections (201 for 200); here exactly ``deflections``.
* Target: uniform over the image. Source offset ``(a, b)`` uniform in
  ``[-window, window]^2`` (0 included: a no-op deflection), redrawn until the source lies in
  the image. Rejection on a product set is a product of per-axis uniforms, so the source row
  is drawn directly, uniform over ``[max(r - window, 0), min(r + window, H - 1)]`` (same for
  columns): the same distribution without a loop. The reference's bounds test (``> 0``)
  also excludes row 0 and column 0 as sources, an off-by-one not reproduced.
* Sequential semantics: deflections are applied in order (a later one can copy a value an
  earlier one wrote, or overwrite it), exactly as the reference, by a loop over the
  deflections that treats the whole batch at once.
* Robust activation map (R-CAM): the reference skips a target with probability given by a
  class-activation map; with its ``-disable_map`` option the map is 0 and targets are
  uniform. Only the uniform variant is implemented.
* Denoiser: the reference calls skimage's ``denoise_wavelet(img, sigma=0.04, mode='soft',
  method='BayesShrink', convert2ycbcr=True, multichannel=True)`` (skimage < 0.16): this is
  :class:`WaveletDenoise` with its defaults (``legacy_ycbcr_sigma=True``). Output clamped to
  ``[0, 1]``.

All random draws (targets, sources) come from the ``generator`` on the CPU
(:func:`draw_deflections`); :func:`deflect` applies them. The defense is not differentiable
(BPDA uses the identity surrogate, as Athalye et al. 2018 did to break it).
"""

from __future__ import annotations

import torch
from pydantic import Field, StrictInt

from advsr.checks import check_image, check_int_range, check_non_negative
from advsr.defenses.base import Defense
from advsr.defenses.registry import DefenseSettings, register_defense
from advsr.defenses.wavelet import WaveletDenoise
from advsr.errors import ShapeError

__all__ = [
    "MAX_DEFLECTIONS",
    "MAX_WINDOW",
    "PixelDeflection",
    "PixelDeflectionSettings",
    "build_pixel_deflection",
    "deflect",
    "draw_deflections",
]

MAX_DEFLECTIONS = 100_000
"""The most deflections per image (Prakash et al. use 200 on 224x224 images)."""
MAX_WINDOW = 1_000
"""The largest deflection window half-size (Prakash et al. use 10; it is clipped to the
image anyway)."""


def _uniform_in(
    lo: torch.Tensor, hi: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Integers uniform in ``[lo, hi]`` (elementwise, inclusive)."""
    u = torch.rand(lo.shape, generator=generator, dtype=torch.float64)
    return torch.minimum(lo + (u * (hi - lo + 1)).floor().long(), hi)


def draw_deflections(
    n: int,
    size: tuple[int, int],
    deflections: int,
    window: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the targets and sources of ``deflections`` deflections for each of ``n`` images.

    Deflection ``k`` acts on channel ``k mod 3``; its target pixel is uniform over the image
    and its source uniform over the window ``|dr|, |dc| <= window`` clipped to the image.

    Args:
        n: number of images.
        size: ``(H, W)``.
        deflections: deflections per image (>= 1).
        window: half-size of the neighbourhood (>= 1).
        generator: CPU random generator (None: torch's default).

    Returns:
        ``(targets, sources)``: int64 CPU tensors of indices into an image flattened as
        ``(3 * H * W)`` (channel-major), in the order the deflections are applied.

    Shape:
        ``(N, deflections)`` each.
    """
    h, w = size
    d = check_int_range(deflections, "deflections", 1, MAX_DEFLECTIONS)
    win = check_int_range(window, "deflection window", 1, MAX_WINDOW)
    rows = torch.randint(0, h, (n, d), generator=generator)
    cols = torch.randint(0, w, (n, d), generator=generator)
    src_rows = _uniform_in((rows - win).clamp(min=0), (rows + win).clamp(max=h - 1), generator)
    src_cols = _uniform_in((cols - win).clamp(min=0), (cols + win).clamp(max=w - 1), generator)
    plane = (torch.arange(d) % 3)[None, :] * (h * w)
    return plane + rows * w + cols, plane + src_rows * w + src_cols


def deflect(x: torch.Tensor, targets: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Apply deflections in order: ``x[t_k] = x[s_k]`` for ``k = 0, 1, ...`` (per image).

    Args:
        x: images.
        targets: indices into each image flattened as ``(C * H * W)``.
        sources: same shape as ``targets``.

    Returns:
        A deflected copy of ``x``.

    Shape:
        ``(N, C, H, W)``, ``(N, D)``, ``(N, D)`` -> ``(N, C, H, W)``.

    Example:
        >>> x = torch.arange(12.0).reshape(1, 3, 2, 2)
        >>> deflect(x, torch.tensor([[0, 1]]), torch.tensor([[3, 0]]))[0, 0]
        tensor([[3., 3.],
                [2., 3.]])
    """
    n = x.shape[0]
    if targets.shape != sources.shape or targets.ndim != 2 or targets.shape[0] != n:
        raise ShapeError(
            f"targets and sources must both be (N={n}, D), got {tuple(targets.shape)} "
            f"and {tuple(sources.shape)}"
        )
    flat = x.reshape(n, -1).clone()
    t, s = targets.to(x.device), sources.to(x.device)
    for k in range(t.shape[1]):
        flat.scatter_(1, t[:, k : k + 1], flat.gather(1, s[:, k : k + 1]))
    return flat.view_as(x)


class PixelDeflection(Defense):
    """Pixel Deflection + BayesShrink wavelet denoising (see the module docstring).

    Args:
        deflections: single-channel deflections per image (reference: 200).
        window: neighbourhood half-size; sources within ``window`` pixels on each axis
            (reference: 10).
        sigma: noise std of the wavelet denoiser (reference: 0.04).
        denoise: apply the wavelet denoiser after deflecting (the defense does).

    Raises:
        InputError: ``deflections`` or ``window`` not a positive integer, ``sigma < 0``.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> pd = PixelDeflection(deflections=50, window=5)
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> y1 = pd(x, torch.Generator().manual_seed(1))
        >>> bool(torch.equal(y1, pd(x, torch.Generator().manual_seed(1))))
        True
    """

    differentiable = False
    stochastic = True

    def __init__(
        self,
        deflections: int = 200,
        window: int = 10,
        sigma: float = 0.04,
        denoise: bool = True,
    ) -> None:
        super().__init__()
        self.deflections = check_int_range(deflections, "deflections", 1, MAX_DEFLECTIONS)
        self.window = check_int_range(window, "deflection window", 1, MAX_WINDOW)
        self.sigma = check_non_negative(sigma, "sigma")
        self.denoiser = WaveletDenoise(sigma=self.sigma) if denoise else None

    def extra_repr(self) -> str:
        return f"deflections={self.deflections}, window={self.window}, sigma={self.sigma}"

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Deflect (randomness from ``generator``), then denoise and clamp to ``[0, 1]``."""
        check_image(x, "x")
        n, _, h, w = x.shape
        targets, sources = draw_deflections(n, (h, w), self.deflections, self.window, generator)
        out = deflect(x, targets, sources)
        if self.denoiser is not None:
            out = self.denoiser(out)
        return out.clamp(0.0, 1.0)


class PixelDeflectionSettings(DefenseSettings):
    """Settings of ``pixel-deflection`` (the reference code's defaults)."""

    deflections: StrictInt = Field(200, ge=1, le=MAX_DEFLECTIONS)
    """Single-channel deflections per image."""
    window: StrictInt = Field(10, ge=1, le=MAX_WINDOW)
    """Neighbourhood half-size the sources are drawn from."""
    sigma: float = Field(0.04, ge=0.0)
    """Noise std of the wavelet denoiser."""
    denoise: bool = True
    """Wavelet-denoise after deflecting."""


def build_pixel_deflection(s: PixelDeflectionSettings) -> PixelDeflection:
    """Pixel deflection of its settings."""
    return PixelDeflection(
        deflections=s.deflections, window=s.window, sigma=s.sigma, denoise=s.denoise
    )


register_defense(
    "pixel-deflection",
    settings=PixelDeflectionSettings,
    build=build_pixel_deflection,
    description="pixel deflection + wavelet denoising (Prakash)",
    classes=(PixelDeflection,),
)
