"""``advsr explain``: where an attack perturbs an image, against where the classifier looks.

For the first ``limit`` correctly classified images: the adversarial image, the per-channel
SSIM maps between clean and adversarial images (Gaussian 11x11 or sliding 8x8), the CAM of
the clean image for its (correct) class (Grad-CAM++ by default, on the classifier's default
layer or a chosen one), and the PGAP paper's overlap metrics of the noise map
``N = (1 - SSIM map) > t`` with the saliency map ``G = CAM > 0.75``: per image at one noise
threshold (0.11, the paper's Table I) and averaged over images along a grid of thresholds
(the paper's Fig. 5). The report shows, per image, the clean and adversarial images, the
three SSIM maps and the CAM (the paper's Fig. 3), and the curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advsr.explain import class_activation_map, default_layer, overlap_curves, ssim_maps
from advsr.explain.overlap import Combine

__all__ = ["ExplainResult", "explain_images", "write_explain_report"]

THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(1, 51))


@dataclass(frozen=True)
class ExplainResult:
    """Per-image metrics at ``threshold``, mean curves, and the maps for the figures."""

    threshold: float
    per_image: list[dict[str, float | None]]
    means: dict[str, float | None]
    curves: dict[str, list[tuple[float, float]]]
    x: torch.Tensor
    x_adv: torch.Tensor
    maps: torch.Tensor
    cam: torch.Tensor


def _clean(v: float) -> float | None:
    return None if math.isnan(v) else v


def explain_images(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    *,
    layer: str | None = None,
    method: str = "gradcam++",
    window: str = "gaussian",
    threshold: float = 0.11,
    combine: Combine = "any",
) -> ExplainResult:
    """Maps and overlap metrics of clean/adversarial pairs (see the module docstring).

    Shape:
        ``(N, 3, H, W)`` x2 -> :class:`ExplainResult`.
    """
    maps = ssim_maps(x, x_adv, window=window)  # type: ignore[arg-type]
    cam = class_activation_map(model, x, layer or default_layer(model), method=method)  # type: ignore[arg-type]
    grid = sorted({*THRESHOLDS, float(threshold)})
    counts = overlap_curves(maps, cam, grid, combine=combine)
    at = grid.index(float(threshold))
    names = ("precision", "recall", "iou", "iou_outside")
    per_metric = {n: getattr(counts, n)() for n in names}
    per_metric["perturbed_fraction"] = counts.perturbed_fraction()
    per_image = [
        {k: _clean(float(v[at, i])) for k, v in per_metric.items()} for i in range(x.shape[0])
    ]
    means_all = counts.means()
    means = {k: _clean(float(v[at])) for k, v in means_all.items()}
    curves = {
        k: [(t, float(v[j])) for j, t in enumerate(grid) if not math.isnan(float(v[j]))]
        for k, v in means_all.items()
    }
    return ExplainResult(
        float(threshold),
        per_image,
        means,
        curves,
        x,
        x_adv,
        maps,
        cam,
    )


def _heat(cam: torch.Tensor) -> torch.Tensor:
    """A [0, 1] map as a blue-to-red RGB image ``(1, 3, H, W)``."""
    c = cam.clamp(0, 1)
    return torch.stack([c, 1 - (2 * c - 1).abs(), 1 - c])[None].float()


def write_explain_report(res: ExplainResult, path: Any, intro: str) -> Any:
    """The HTML report: Fig. 3-style rows per image, the metrics table and the curves."""
    from advsr.report import Figure, Plot, ReportTable, write_report

    figures = []
    for i in range(res.x.shape[0]):
        m = res.maps[i].clamp(0, 1).float()
        images = [
            ("clean", res.x[i : i + 1].float().cpu()),
            ("adversarial", res.x_adv[i : i + 1].float().cpu()),
            *((f"SSIM map {c}", m[k].expand(3, -1, -1)[None].cpu()) for k, c in enumerate("RGB")),
            ("CAM (clean)", _heat(res.cam[i].cpu())),
        ]
        figures.append(Figure(f"image {i}", images))
    keys = list(res.per_image[0]) if res.per_image else []
    rows = [
        [str(i), *("-" if r[k] is None else f"{r[k]:.3f}" for k in keys)]
        for i, r in enumerate(res.per_image)
    ]
    rows.append(["mean", *("-" if res.means[k] is None else f"{res.means[k]:.3f}" for k in keys)])
    table = ReportTable(
        f"overlap metrics at noise threshold {res.threshold}", ["image", *keys], rows
    )
    plot = Plot(
        "overlap metrics against the noise threshold",
        "noise threshold",
        "mean over images",
        [(k, v) for k, v in res.curves.items()],
    )
    return write_report(path, "advsr explain", intro, [table], figures, [plot])
