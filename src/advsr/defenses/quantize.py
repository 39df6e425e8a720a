"""Colour quantisation defenses: bit-depth reduction and K-means colour clustering.

**Bit-depth reduction** (Xu et al., "Feature Squeezing", NDSS 2018; seed report
``input_transformation_defenses.txt`` sec. 3.2 "colour-depth reduction") in two forms:

* ``bits=b`` (Xu et al.'s formula and reference code): keep ``2^b`` levels per channel,
  ``round(x * (2^b - 1)) / (2^b - 1)`` for ``b`` in ``1..8``. Ties round half to even (torch
  and numpy ``round``); the levels are evenly spaced over ``[0, 1]`` so black and white are
  kept. Xu et al. use 1 bit on MNIST and 5 bits on CIFAR-10 and ImageNet.
* ``reduce=r`` (the seed report's "bits to reduce" on 8-bit values): ``X = round(255 x)``,
  ``X - (X mod 2^r)`` for ``r`` in ``0..7``, divided by 255. This clears the ``r`` low bits,
  so it truncates towards black (the largest value becomes ``255 - (2^r - 1)``, not 255) and
  ``reduce=r`` is *not* the same as ``bits=8-r``. Use it to reproduce the seed report's
  2/4/6-bit figures.

Both are piecewise constant (zero gradient almost everywhere), so the defense is
``differentiable=False`` with the identity as BPDA surrogate.

**K-means colour quantisation** (seed report sec. 3.2/4.3, a global-variance counterpart of
TVM): the ``H * W`` pixels of each image are clustered as 3-D RGB points into ``k`` colours
by Lloyd's algorithm, run for all images of the batch at once, and every pixel is replaced by
its cluster centre (so each image has at most ``k`` distinct colours). Choices:

* **Initialisation** from the ``generator`` (so the defense is stochastic): ``"k-means++"``
  (default; Arthur and Vassilvitskii 2007, one candidate per step, *not* scikit-learn's greedy
  variant with ``2 + log k`` local trials) or ``"random"`` (``k`` distinct pixel positions,
  uniformly). The uniforms are drawn on the CPU and the sampling (inverse CDF of the ``D^2``
  weights) runs on the image's device.
* **Iterations**: at most ``iterations`` Lloyd steps (assign to the nearest centre by exact
  squared Euclidean distance, first centre on ties; then move each centre to the mean of its
  pixels). An image stops (its centres freeze) once the total squared centre shift of a step
  is ``<= tol``; with ``tol=0`` that is scikit-learn's ``KMeans(algorithm="lloyd", tol=0)``
  run from the same initial centres (its ``tol`` is relative to the data variance; ours is
  absolute, on ``[0, 1]`` values). The labels returned are those of the final centres.
* **Empty clusters** keep their previous centre (scikit-learn instead moves them to far
  points; this only matters when ``k`` approaches the number of distinct colours).

K-means is piecewise constant in the input, so ``differentiable=False`` (identity surrogate).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field, StrictInt, model_validator

from advsr.checks import check_image, check_int_range
from advsr.defenses.base import Defense
from advsr.defenses.registry import DefenseSettings, register_defense
from advsr.errors import InputError

__all__ = [
    "DEFAULT_BITS",
    "MAX_KMEANS_ITERATIONS",
    "MAX_KMEANS_K",
    "BitDepthReduction",
    "BitDepthSettings",
    "KMeansQuantization",
    "KMeansSettings",
    "bit_depth",
    "bit_reduce",
    "build_bit_depth",
    "build_kmeans",
    "kmeans_init",
    "kmeans_quantize",
    "lloyd",
]

KMeansInit = Literal["k-means++", "random"]

MAX_KMEANS_K = 256
"""The most K-means colours per image (an 8-bit palette; the distances of one batch take
``N * H * W * k`` values)."""
MAX_KMEANS_ITERATIONS = 10_000
"""The most Lloyd steps (the default 20 usually converges)."""


def bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Xu et al.'s bit-depth squeezer: ``round(x * (2^bits - 1)) / (2^bits - 1)``.

    Args:
        x: images in ``[0, 1]``.
        bits: bits kept per channel, ``1..8``.

    Returns:
        The quantised images (``2^bits`` levels, same dtype and device).

    Raises:
        InputError: if ``bits`` is not an integer in ``1..8``.
        ShapeError: if ``x`` is not an ``(N, 3, H, W)`` floating tensor.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> bit_depth(torch.tensor([0.1, 0.4, 0.9]).view(1, 3, 1, 1), 1).flatten().tolist()
        [0.0, 0.0, 1.0]
    """
    check_int_range(bits, "bits", 1, 8)
    check_image(x, "x")
    levels = float(2**bits - 1)
    return torch.round(x * levels) / levels


def bit_reduce(x: torch.Tensor, reduce: int) -> torch.Tensor:
    """The seed report's form: clear the ``reduce`` low bits of ``X = round(255 x)``.

    ``(X - (X mod 2^reduce)) / 255``.

    Args:
        x: images in ``[0, 1]``.
        reduce: low bits cleared, ``0..7`` (0 is 8-bit rounding only).

    Returns:
        The quantised images (same dtype and device).

    Raises:
        InputError: if ``reduce`` is not an integer in ``0..7``.
        ShapeError: if ``x`` is not an ``(N, 3, H, W)`` floating tensor.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> y = bit_reduce(torch.full((1, 3, 1, 1), 1.0), 4)
        >>> round(y.flatten()[0].item() * 255)
        240
    """
    check_int_range(reduce, "reduce", 0, 7)
    check_image(x, "x")
    v = torch.round(x * 255.0)
    return (v - torch.remainder(v, float(2**reduce))) / 255.0


class BitDepthReduction(Defense):
    """Bit-depth reduction with either ``bits=`` (Xu et al.) or ``reduce=`` (seed report).

    Args:
        bits: bits kept, ``1..8`` (:func:`bit_depth`).
        reduce: low bits cleared on 8-bit values, ``0..7`` (:func:`bit_reduce`).

    Raises:
        InputError: unless exactly one of ``bits`` and ``reduce`` is given, in range.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> torch.unique(BitDepthReduction(bits=2)(torch.rand(2, 3, 8, 8))).numel() <= 4
        True
    """

    differentiable = False
    stochastic = False

    def __init__(self, bits: int | None = None, *, reduce: int | None = None) -> None:
        super().__init__()
        if (bits is None) == (reduce is None):
            raise InputError("bit-depth reduction takes exactly one of bits= and reduce=")
        if bits is not None:
            check_int_range(bits, "bits", 1, 8)
        if reduce is not None:
            check_int_range(reduce, "reduce", 0, 7)
        self.bits = bits
        self.reduce = reduce

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Quantise ``x`` (``generator`` is ignored: the defense is deterministic)."""
        if self.bits is not None:
            return bit_depth(x, self.bits)
        assert self.reduce is not None
        return bit_reduce(x, self.reduce)

    def extra_repr(self) -> str:
        return f"bits={self.bits}" if self.bits is not None else f"reduce={self.reduce}"


def _check_kmeans_args(k: object, iterations: object, tol: object, init: object) -> None:
    check_int_range(k, "k-means k (colours)", 2, MAX_KMEANS_K)
    check_int_range(iterations, "k-means iterations", 0, MAX_KMEANS_ITERATIONS)
    if (
        isinstance(tol, bool)
        or not isinstance(tol, int | float)
        or not 0.0 <= float(tol) < float("inf")
    ):
        raise InputError(f"tol must be a finite number >= 0, got {tol!r}")
    if init not in ("k-means++", "random"):
        raise InputError(f"init must be 'k-means++' or 'random', got {init!r}")


def _sq_dist(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Exact squared distances ``(N, P, D), (N, k, D) -> (N, P, k)`` (no expansion trick)."""
    d = torch.sub(points[:, :, None, 0], centres[:, None, :, 0]).square_()
    tmp = torch.empty_like(d)
    for c in range(1, points.shape[-1]):
        torch.sub(points[:, :, None, c], centres[:, None, :, c], out=tmp)
        d.add_(tmp.square_())
    return d


def kmeans_init(
    points: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    init: KMeansInit = "k-means++",
) -> torch.Tensor:
    """Initial centres for each point set: k-means++ or ``k`` distinct random points.

    Args:
        points: ``N`` sets of ``P`` points (pixels as RGB rows).
        k: number of centres, ``2 <= k <= P``.
        generator: CPU generator all the randomness is drawn from.
        init: ``"k-means++"`` (``D^2`` sampling, one candidate per step) or ``"random"``.

    Returns:
        Initial centres, chosen among the points.

    Raises:
        InputError: if ``k`` or ``init`` is invalid or ``k > P``.

    Shape:
        ``(N, P, D)`` -> ``(N, k, D)``.
    """
    _check_kmeans_args(k, 0, 0.0, init)
    n, p, dim = points.shape
    if k > p:
        raise InputError(f"k-means needs k <= number of pixels ({p}), got k={k}")
    if init == "random":
        keys = torch.rand(n, p, generator=generator).to(points.device)
        idx = keys.topk(k, dim=1).indices
        return points.gather(1, idx[:, :, None].expand(n, k, dim))
    u = torch.rand(n, k, generator=generator, dtype=torch.float64).to(points.device)
    first = (u[:, 0] * p).long().clamp_max(p - 1)
    centres = points.gather(1, first[:, None, None].expand(n, 1, dim))
    best = _sq_dist(points, centres)[:, :, 0]
    for j in range(1, k):
        # Inverse CDF of the D^2 weights; where every point already lies on a centre (fewer
        # distinct colours than k) all weights are 0 and the pick is uniform instead.
        cdf = best.to(torch.float64).cumsum(dim=1)
        total = cdf[:, -1:]
        uniform = total <= 0
        if bool(uniform.any()):
            cdf = torch.where(uniform, torch.ones_like(cdf).cumsum(dim=1), cdf)
            total = cdf[:, -1:]
        idx = torch.searchsorted(cdf, u[:, j : j + 1] * total, right=True).clamp_max(p - 1)
        new = points.gather(1, idx[:, :, None].expand(n, 1, dim))
        centres = torch.cat([centres, new], dim=1)
        best = torch.minimum(best, _sq_dist(points, new)[:, :, 0])
    return centres


def lloyd(
    points: torch.Tensor, centres: torch.Tensor, iterations: int = 20, tol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Lloyd iterations from given centres.

    Args:
        points: ``N`` sets of ``P`` points.
        centres: ``N`` sets of ``k`` initial centres.
        iterations: maximum number of Lloyd steps (``>= 0``).
        tol: an image stops once a step moves its centres by a total squared distance
            ``<= tol`` (absolute; ``0`` stops only at a fixed point).

    Returns:
        ``(centres, labels)``: the final centres ``(N, k, D)`` and the index ``(N, P)`` of
        each point's nearest final centre.

    Shape:
        ``(N, P, D), (N, k, D)`` -> ``(N, k, D), (N, P)``.
    """
    n, _, dim = points.shape
    k = centres.shape[1]
    done = torch.zeros(n, dtype=torch.bool, device=points.device)
    for _ in range(iterations):
        labels = _sq_dist(points, centres).argmin(dim=2)
        sums = points.new_zeros(n, k, dim).scatter_add_(
            1, labels[:, :, None].expand_as(points), points
        )
        counts = points.new_zeros(n, k).scatter_add_(1, labels, points.new_ones(labels.shape))
        new = torch.where(counts[:, :, None] > 0, sums / counts[:, :, None].clamp_min(1), centres)
        shift = (new - centres).square().sum(dim=(1, 2))
        centres = torch.where(done[:, None, None], centres, new)
        done = done | (shift <= tol)
        if bool(done.all()):
            break
    return centres, _sq_dist(points, centres).argmin(dim=2)


def kmeans_quantize(
    x: torch.Tensor,
    k: int = 8,
    *,
    iterations: int = 20,
    tol: float = 1e-6,
    init: KMeansInit = "k-means++",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace every pixel by its K-means colour centre (``k`` colours per image).

    Args:
        x: images in ``[0, 1]``.
        k: colours per image, ``>= 2`` (and at most ``H * W``).
        iterations: maximum Lloyd steps.
        tol: absolute stopping tolerance on the total squared centre shift.
        init: ``"k-means++"`` or ``"random"`` initial centres.
        generator: CPU generator for the initialisation.

    Returns:
        The quantised images, at most ``k`` distinct colours each.

    Raises:
        InputError: if ``k``, ``iterations``, ``tol`` or ``init`` is invalid.
        ShapeError: if ``x`` is not an ``(N, 3, H, W)`` floating tensor.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = kmeans_quantize(torch.rand(2, 3, 8, 8), 4, generator=g)
        >>> [len(torch.unique(img.flatten(1), dim=1).T) <= 4 for img in y]
        [True, True]
    """
    _check_kmeans_args(k, iterations, tol, init)
    check_image(x, "x")
    n, c, h, w = x.shape
    points = x.flatten(2).transpose(1, 2)  # (N, H*W, 3)
    centres = kmeans_init(points, k, generator, init)
    centres, labels = lloyd(points, centres, iterations, float(tol))
    out = centres.gather(1, labels[:, :, None].expand(n, h * w, c))
    return out.transpose(1, 2).reshape(n, c, h, w).clamp(0.0, 1.0)


class KMeansQuantization(Defense):
    """K-means colour quantisation (stochastic initialisation, not differentiable).

    Args:
        k: colours per image, in ``2..MAX_KMEANS_K``.
        iterations: maximum Lloyd steps (at most :data:`MAX_KMEANS_ITERATIONS`).
        tol: absolute stopping tolerance on the total squared centre shift per image.
        init: ``"k-means++"`` (default) or ``"random"``.

    Raises:
        InputError: if an argument is out of range.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> d = KMeansQuantization(k=4)
        >>> g = lambda: torch.Generator().manual_seed(1)
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.equal(d(x, g()), d(x, g()))
        True
    """

    differentiable = False
    stochastic = True

    def __init__(
        self,
        k: int = 8,
        *,
        iterations: int = 20,
        tol: float = 1e-6,
        init: KMeansInit = "k-means++",
    ) -> None:
        super().__init__()
        _check_kmeans_args(k, iterations, tol, init)
        self.k = k
        self.iterations = iterations
        self.tol = float(tol)
        self.init: KMeansInit = init

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Quantise each image of ``x`` to ``k`` colours (initial centres from ``generator``)."""
        return kmeans_quantize(
            x,
            self.k,
            iterations=self.iterations,
            tol=self.tol,
            init=self.init,
            generator=generator,
        )

    def extra_repr(self) -> str:
        return f"k={self.k}, iterations={self.iterations}, tol={self.tol}, init={self.init!r}"


DEFAULT_BITS = 4
"""The bits ``bit-depth`` keeps when neither ``bits`` nor ``reduce`` is given."""


class BitDepthSettings(DefenseSettings):
    """Settings of ``bit-depth``: one of ``bits`` and ``reduce`` (neither: ``bits=4``)."""

    bits: Annotated[StrictInt, Field(ge=1, le=8)] | None = None
    """Bits kept per channel, 1..8 (Xu et al.); 4 when neither bits nor reduce is given."""
    reduce: Annotated[StrictInt, Field(ge=0, le=7)] | None = None
    """Low bits cleared on the 8-bit values, 0..7 (the seed report)."""

    @model_validator(mode="before")
    @classmethod
    def _default_bits(cls, data: Any) -> Any:
        """Neither ``bits`` nor ``reduce`` (or both ``none``): 4 bits."""
        if isinstance(data, dict) and data.get("bits") is None and data.get("reduce") is None:
            return {**data, "bits": DEFAULT_BITS}
        return data


def build_bit_depth(s: BitDepthSettings) -> BitDepthReduction:
    """Bit-depth reduction of its settings."""
    return BitDepthReduction(s.bits, reduce=s.reduce)


class KMeansSettings(DefenseSettings):
    """Settings of ``kmeans``."""

    k: StrictInt = Field(8, ge=2, le=MAX_KMEANS_K)
    """Colours per image."""
    iterations: StrictInt = Field(20, ge=0, le=MAX_KMEANS_ITERATIONS)
    """Maximum Lloyd steps."""
    init: KMeansInit = "k-means++"
    """Initial centres: k-means++ or random."""


def build_kmeans(s: KMeansSettings) -> KMeansQuantization:
    """K-means colour quantisation of its settings."""
    return KMeansQuantization(s.k, iterations=s.iterations, init=s.init)


register_defense(
    "bit-depth",
    settings=BitDepthSettings,
    build=build_bit_depth,
    description="bit-depth reduction: bits=b (2^b-1 levels) or reduce=r",
    classes=(BitDepthReduction,),
)
register_defense(
    "kmeans",
    settings=KMeansSettings,
    build=build_kmeans,
    description="K-means colour quantisation, k colours per image",
    classes=(KMeansQuantization,),
)
