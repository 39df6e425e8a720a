"""Do adversarial perturbations hit the regions a classifier looks at? Overlap metrics.

The quantitative analysis of the PGAP paper (``pgap_perceptual_ssim_attacks.txt``, sec.
V-B, Fig. 5, Table I) compares, per image ``i``, two binary maps:

* the **noise map** ``N_i = (1 - SSIM map(i)) > noise threshold``: the pixels the
  perturbation changed, from the per-channel SSIM maps of :mod:`advsr.explain.maps`;
* the **saliency map** ``G_i = CAM(i) > 0.75``: the pixels important for the decision, from
  the min-max normalised Grad-CAM++ map of the clean image (:mod:`advsr.explain.cam`).

With ``G`` as ground truth: ``TP = sum(N & G)``, ``FP = sum(N & ~G)``, ``FN = sum(~N & G)``,
``TN = sum(~N & ~G)`` (pixel counts), and per image

* precision ``TP / (TP + FP)``: the share of perturbed pixels that are salient;
* recall ``TP / (TP + FN)``: the share of salient pixels that are perturbed;
* IoU ``TP / (TP + FP + FN)`` = ``IoU(N, G)``;
* IoU outside ``FP / (TP + FP + TN)`` = ``IoU(N, ~G)`` (``N | ~G`` has ``TP + FP + TN``
  pixels): perturbation outside the salient region, ideally small;
* perturbed fraction ``(TP + FP) / pixels`` (the paper's "number of pixels perturbed").

The paper reports each metric averaged over images (the mean of per-image ratios), as a
curve over noise thresholds (Table I: threshold 0.11). Conventions this module has to choose:

* **Thresholds are strict** (``>``) for both maps, as in the paper.
* **Undefined ratios** (a zero denominator: no perturbed pixel for precision, no salient
  pixel for recall) are ``zero_division`` (NaN by default, as scikit-learn's option), and
  the dataset means skip NaN (the average is over the images where the ratio is defined).
* **Channels**: the paper draws one SSIM map per colour channel and does not say how they
  become one pixel map. ``combine="any"`` (default) marks a pixel as perturbed when any
  channel's ``1 - SSIM`` exceeds the threshold (the dark pixels of any of the three maps it
  shows), i.e. it thresholds ``max_c (1 - SSIM_c)``; ``"mean"`` thresholds ``1 - mean_c
  SSIM_c`` (the channel average the global SSIM takes); ``"all"`` requires every channel;
  ``"channels"`` counts every (channel, pixel) pair as a sample with ``G`` repeated over the
  channels (what thresholding an ``H x W x 3`` map array directly gives). Which one produced
  Table I is not stated, so none is known to reproduce it.

The curves are batched over thresholds: the distortion values inside and outside ``G`` are
sorted once per image and ``torch.searchsorted`` counts the values above every threshold,
so a curve of ``T`` points costs one sort, not ``T`` passes (exact, ties included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from advsr.errors import InputError, ShapeError

__all__ = [
    "OverlapCounts",
    "confusion_counts",
    "distortion",
    "noise_mask",
    "overlap_curves",
    "saliency_mask",
]

Combine = Literal["any", "mean", "all", "channels"]
_COMBINE = ("any", "mean", "all", "channels")


def _check_maps(maps: object) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4 or not maps.is_floating_point():
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ShapeError(f"SSIM maps must be a floating (N, C, H, W) tensor, got {got}")
    if maps.numel() == 0:
        raise ShapeError(f"SSIM maps are empty: shape {tuple(maps.shape)}")
    return maps


def _check_threshold(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def distortion(ssim_maps: torch.Tensor, combine: Combine = "any") -> torch.Tensor:
    """Local distortion ``1 - SSIM`` with the channels combined as ``combine`` says.

    Args:
        ssim_maps: per-channel SSIM maps (e.g. :func:`advsr.explain.maps.ssim_maps`).
        combine: ``"any"`` (``max_c (1 - SSIM_c)``), ``"mean"`` (``1 - mean_c SSIM_c``),
            ``"all"`` (``min_c (1 - SSIM_c)``) or ``"channels"`` (kept per channel).

    Returns:
        float64 distortion; ``distortion > t`` is the noise map at threshold ``t``.

    Raises:
        ShapeError: maps not ``(N, C, H, W)``.
        InputError: unknown ``combine``.

    Shape:
        ``(N, C, H, W)`` -> ``(N, H, W)`` (``(N, C, H, W)`` for ``"channels"``).

    Example:
        >>> s = torch.tensor([0.9, 0.5, 1.0]).view(1, 3, 1, 1)
        >>> [round(float(distortion(s, c)), 4) for c in ("any", "mean", "all")]
        [0.5, 0.2, 0.0]
    """
    maps = _check_maps(ssim_maps).to(torch.float64)
    if combine == "any":
        return 1 - maps.amin(dim=1)
    if combine == "mean":
        return 1 - maps.mean(dim=1)
    if combine == "all":
        return 1 - maps.amax(dim=1)
    if combine == "channels":
        return 1 - maps
    raise InputError(f"unknown channel combination {combine!r}; use one of {', '.join(_COMBINE)}")


def noise_mask(
    ssim_maps: torch.Tensor, threshold: float, *, combine: Combine = "any"
) -> torch.Tensor:
    """The PGAP noise map ``N = (1 - SSIM map) > threshold``.

    Args:
        ssim_maps: per-channel SSIM maps.
        threshold: the noise threshold (0.11 in the paper's Table I).
        combine: channel combination (see :func:`distortion`).

    Returns:
        Boolean mask.

    Shape:
        ``(N, C, H, W)`` -> ``(N, H, W)`` (``(N, C, H, W)`` for ``"channels"``).

    Example:
        >>> s = torch.tensor([0.95, 0.85, 1.0]).view(1, 3, 1, 1)
        >>> noise_mask(s, 0.11).item(), noise_mask(s, 0.11, combine="mean").item()
        (True, False)
    """
    t = _check_threshold(threshold, "noise threshold")
    return distortion(ssim_maps, combine) > t


def saliency_mask(cam: torch.Tensor, threshold: float = 0.75) -> torch.Tensor:
    """The PGAP saliency map ``G = CAM > threshold`` (0.75 in the paper).

    Args:
        cam: normalised class activation maps in ``[0, 1]``.
        threshold: saliency threshold.

    Returns:
        Boolean mask.

    Shape:
        ``(N, H, W)`` -> ``(N, H, W)``.

    Example:
        >>> saliency_mask(torch.tensor([[[0.5, 0.75, 0.8]]])).tolist()
        [[[False, False, True]]]
    """
    if not isinstance(cam, torch.Tensor) or cam.ndim != 3:
        got = tuple(cam.shape) if isinstance(cam, torch.Tensor) else type(cam).__name__
        raise ShapeError(f"CAMs must be an (N, H, W) tensor, got {got}")
    return cam > _check_threshold(threshold, "saliency threshold")


def _pair(noise: torch.Tensor, saliency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten an ``(N, [C,] H, W)`` noise tensor and an ``(N, H, W)`` mask alike."""
    if saliency.ndim != 3:
        raise ShapeError(f"the saliency map must be (N, H, W), got {tuple(saliency.shape)}")
    n, h, w = saliency.shape
    if noise.ndim == 4:
        if noise.shape[0] != n or noise.shape[-2:] != (h, w):
            raise ShapeError(
                f"noise {tuple(noise.shape)} and saliency {tuple(saliency.shape)} differ in "
                "batch or size"
            )
        saliency = saliency[:, None].expand_as(noise)
    elif noise.shape != saliency.shape:
        raise ShapeError(
            f"noise {tuple(noise.shape)} and saliency {tuple(saliency.shape)} differ in shape"
        )
    return noise.reshape(n, -1), saliency.reshape(n, -1)


def confusion_counts(
    noise: torch.Tensor, saliency: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel counts ``TP, FP, FN, TN`` of a noise mask against a saliency mask, per image.

    Args:
        noise: boolean noise map ``N`` (a 4-D map counts every channel-pixel, with the
            saliency map repeated over the channels).
        saliency: boolean saliency map ``G`` (the ground truth).

    Returns:
        ``(TP, FP, FN, TN)``, int64 each.

    Raises:
        ShapeError: masks that do not match.

    Shape:
        ``(N, H, W)`` or ``(N, C, H, W)``, and ``(N, H, W)`` -> 4 x ``(N,)``.

    Example:
        >>> n = torch.tensor([[[True, True, False, False]]])
        >>> g = torch.tensor([[[True, False, True, False]]])
        >>> [int(c) for c in confusion_counts(n, g)]
        [1, 1, 1, 1]
    """
    if noise.dtype != torch.bool or saliency.dtype != torch.bool:
        raise ShapeError(f"masks must be boolean, got {noise.dtype} and {saliency.dtype}")
    nn_, g = _pair(noise, saliency)
    tp = (nn_ & g).sum(dim=1)
    fp = (nn_ & ~g).sum(dim=1)
    fn = (~nn_ & g).sum(dim=1)
    tn = (~nn_ & ~g).sum(dim=1)
    return tp, fp, fn, tn


def _ratio(num: torch.Tensor, den: torch.Tensor, zero_division: float) -> torch.Tensor:
    num, den = num.to(torch.float64), den.to(torch.float64)
    fill = torch.full_like(num, zero_division)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), fill)


@dataclass(frozen=True)
class OverlapCounts:
    """Confusion counts of noise maps against saliency maps over noise thresholds.

    Attributes:
        thresholds: the noise thresholds, float64 ``(T,)``.
        tp: pixels perturbed and salient, int64 ``(T, N)``.
        fp: pixels perturbed, not salient.
        fn: pixels salient, not perturbed.
        tn: pixels neither.

    Every metric method returns float64 ``(T, N)`` (one value per threshold and image);
    ``zero_division`` is the value of a ratio whose denominator is 0 (NaN by default).
    """

    thresholds: torch.Tensor
    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor

    @property
    def pixels(self) -> torch.Tensor:
        """Samples per image (``H * W``, times ``C`` for ``combine="channels"``)."""
        return self.tp + self.fp + self.fn + self.tn

    def precision(self, zero_division: float = math.nan) -> torch.Tensor:
        """``TP / (TP + FP)``: share of perturbed pixels inside the salient region."""
        return _ratio(self.tp, self.tp + self.fp, zero_division)

    def recall(self, zero_division: float = math.nan) -> torch.Tensor:
        """``TP / (TP + FN)``: share of salient pixels that are perturbed."""
        return _ratio(self.tp, self.tp + self.fn, zero_division)

    def iou(self, zero_division: float = math.nan) -> torch.Tensor:
        """``TP / (TP + FP + FN)`` = ``IoU(N, G)``."""
        return _ratio(self.tp, self.tp + self.fp + self.fn, zero_division)

    def iou_outside(self, zero_division: float = math.nan) -> torch.Tensor:
        """``FP / (TP + FP + TN)`` = ``IoU(N, ~G)`` (the paper's "IOU outside")."""
        return _ratio(self.fp, self.tp + self.fp + self.tn, zero_division)

    def perturbed_fraction(self) -> torch.Tensor:
        """``(TP + FP) / pixels``: the paper's "number of pixels perturbed"."""
        return _ratio(self.tp + self.fp, self.pixels, math.nan)

    def means(self, zero_division: float = math.nan) -> dict[str, torch.Tensor]:
        """Every metric averaged over images (NaN skipped), one value per threshold.

        Returns:
            ``{"precision", "recall", "iou", "iou_outside", "perturbed_fraction"}`` ->
            float64 ``(T,)`` (NaN where no image defines the ratio).
        """
        per_image = {
            "precision": self.precision(zero_division),
            "recall": self.recall(zero_division),
            "iou": self.iou(zero_division),
            "iou_outside": self.iou_outside(zero_division),
            "perturbed_fraction": self.perturbed_fraction(),
        }
        return {k: v.nanmean(dim=1) for k, v in per_image.items()}


def overlap_curves(
    ssim_maps: torch.Tensor,
    cam: torch.Tensor,
    thresholds: Sequence[float] | torch.Tensor,
    *,
    combine: Combine = "any",
    saliency_threshold: float = 0.75,
) -> OverlapCounts:
    """Counts of ``N = distortion > t`` against ``G = CAM > saliency_threshold`` for every t.

    Args:
        ssim_maps: per-channel SSIM maps between the clean and adversarial images (full
            size, the same ``H x W`` as ``cam``).
        cam: normalised CAMs of the clean images.
        thresholds: noise thresholds (finite numbers, any order).
        combine: channel combination (see :func:`distortion`).
        saliency_threshold: ``G = cam > saliency_threshold`` (0.75 in the paper).

    Returns:
        The counts per threshold and image.

    Raises:
        ShapeError: maps and CAMs of different batch or size, or NaN distortion values.
        InputError: bad thresholds or ``combine``.

    Shape:
        ``(N, C, H, W)``, ``(N, H, W)``, ``(T,)`` -> counts ``(T, N)``.

    Example:
        >>> s = torch.tensor([[[[0.5, 0.95], [1.0, 0.8]]]]).expand(1, 3, 2, 2)
        >>> cam = torch.tensor([[[1.0, 0.9], [0.2, 0.0]]])
        >>> c = overlap_curves(s, cam, [0.1, 0.3])
        >>> c.tp.tolist(), c.fp.tolist(), c.precision().tolist()
        ([[1], [1]], [[1], [0]], [[0.5], [1.0]])
    """
    d = distortion(ssim_maps, combine)
    g = saliency_mask(cam, saliency_threshold)
    if bool(torch.isnan(d).any()):
        raise ShapeError("the SSIM maps contain NaN")
    t = torch.as_tensor(thresholds, dtype=torch.float64)
    if t.ndim != 1 or t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise InputError(f"thresholds must be a non-empty list of finite numbers, got {t}")
    d, g = _pair(d, g)
    g = g.to(d.device)
    neg = torch.tensor(-math.inf, dtype=d.dtype, device=d.device)
    inside = torch.where(g, d, neg).sort(dim=1).values
    outside = torch.where(g, neg, d).sort(dim=1).values
    t = t.to(d.device)
    values = t.expand(d.shape[0], -1).contiguous()
    pixels = d.shape[1]
    # number of entries > t: -inf fillers never are, so they stand for the other region
    tp = pixels - torch.searchsorted(inside, values, right=True)
    fp = pixels - torch.searchsorted(outside, values, right=True)
    n_salient = g.sum(dim=1, keepdim=True)
    fn = n_salient - tp
    tn = (pixels - n_salient) - fp
    return OverlapCounts(
        t, tp.T.contiguous(), fp.T.contiguous(), fn.T.contiguous(), tn.T.contiguous()
    )
