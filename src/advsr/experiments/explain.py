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
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from advsr.engine.attack_cells import ClassifierCellConfig, attacked_batches, items_of
from advsr.engine.cell import (
    CellRow,
    CellRun,
    Experiment,
    Plan,
    ReportParts,
    cell_identity,
    figure_artifacts,
    register_experiment,
    stored_figures,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.experiments.attack_clf import classifier_attack
from advsr.experiments.defend import select_correct
from advsr.explain import class_activation_map, default_layer, overlap_curves, ssim_maps
from advsr.explain.overlap import Combine
from advsr.report import Plot, ReportTable, fmt
from advsr.settings import NEUTRAL

__all__ = ["ExplainConfig", "ExplainResult", "explain_images"]

NAME = "explain"
THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(1, 51))
METRICS = ("precision", "recall", "iou", "iou_outside", "perturbed_fraction")


@dataclass(frozen=True)
class ExplainResult:
    """Per-image metrics at ``threshold``, per-image curves over :data:`THRESHOLDS` (and
    ``threshold``), and the maps for the figures."""

    threshold: float
    grid: list[float]
    per_image: list[dict[str, float | None]]
    curves: list[dict[str, list[float]]]
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
    per_metric = {n: getattr(counts, n)() for n in METRICS}
    per_image = [
        {k: _clean(float(v[at, i])) for k, v in per_metric.items()} for i in range(x.shape[0])
    ]
    curves = [{k: v[:, i].tolist() for k, v in per_metric.items()} for i in range(x.shape[0])]
    return ExplainResult(float(threshold), grid, per_image, curves, maps, cam)


class ExplainConfig(ClassifierCellConfig):
    """Settings of an ``explain`` cell: the first ``limit`` correctly classified images, one
    attack (default PGD at 8/255), the CAM ``layer`` (dotted module name; None: the
    classifier's last stage) and ``method``, the SSIM-map ``window`` and the noise
    ``threshold`` of Table I; ``figures`` keeps the figures of the first N images."""

    limit: int | None = Field(8, ge=1)
    """The first N correctly classified images."""
    layer: str | None = None
    """CAM layer (dotted module name; default: the classifier's last stage)."""
    method: Literal["gradcam++", "gradcam"] = "gradcam++"
    """CAM method."""
    window: Literal["gaussian", "block"] = "gaussian"
    """SSIM map window: gaussian (11x11) or block (8x8)."""
    threshold: float = Field(0.11, gt=0.0, lt=1.0)
    """Noise threshold on 1 - SSIM (Table I)."""
    figures: Annotated[int, NEUTRAL] = Field(8, ge=0)
    """Keep the figures of the first N images for the report."""


def _plan(cfg: ExplainConfig, ctx: Context) -> Plan:
    from advsr.explain import get_layer

    attack = classifier_attack(cfg)
    data, _ = select_correct(cfg, ctx)
    device = ctx.device(cfg.device)
    model = ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed)
    layer = cfg.layer or default_layer(model)
    get_layer(model, layer)  # an unknown layer fails now, with the known names
    items = items_of(data.keys, data.names)

    def compute(skip: set[str]) -> Iterator[Any]:
        for b in attacked_batches(model, data, items, attack, cfg, skip, device):
            x, res, idx = b.x, b.result, b.idx
            ex = explain_images(
                model, x, res.x_adv, layer=layer, method=cfg.method, window=cfg.window,
                threshold=cfg.threshold,
            )  # fmt: skip
            per = b.seconds_per_item()
            for j, i in enumerate(idx):
                if i < cfg.figures:
                    yield from figure_artifacts(
                        items[i].key, _figure(x[j], res.x_adv[j], ex.maps[j], ex.cam[j])
                    )
                metrics = {
                    "fooled": float(res.success[j]),
                    **ex.per_image[j],
                    **{f"curve_{k}": v for k, v in ex.curves[j].items()},
                }
                yield CellRow(i, items[i].key, items[i].name, metrics, per)

    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=EXPLAIN.version, attack=attack, extra={"layer": layer}),
        items,
        compute,
        f"explain {attack.label}",
        {"grid": sorted({*THRESHOLDS, float(cfg.threshold)}), "attack": attack.label},
        batch=cfg.batch_size,
    )


def _figure(
    x: torch.Tensor, x_adv: torch.Tensor, maps: torch.Tensor, cam: torch.Tensor
) -> list[tuple[str, torch.Tensor]]:
    """Fig. 3's row of one image: clean, adversarial, the three SSIM maps, the CAM."""
    m = maps.clamp(0, 1).float()
    return [
        ("clean", x[None]),
        ("adversarial", x_adv[None]),
        *((f"SSIM map {c}", m[k].expand(3, -1, -1)[None]) for k, c in enumerate("RGB")),
        ("CAM (clean)", _heat(cam)),
    ]


def _heat(cam: torch.Tensor) -> torch.Tensor:
    """A [0, 1] map as a blue-to-red RGB image ``(1, 3, H, W)``."""
    c = cam.clamp(0, 1)
    return torch.stack([c, 1 - (2 * c - 1).abs(), 1 - c])[None].float()


def _nanmean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, float) and not math.isnan(v)]
    return statistics.fmean(vals) if vals else None


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """Per cell: per-image metrics at the threshold, their means (NaN skipped, as the
    paper's curves) and the mean curves over the noise thresholds."""
    out = []
    for c in cells:
        grid = c.info["grid"]
        means = {k: _nanmean([r[k] for r in c.rows]) for k in METRICS}
        curves = {}
        for k in METRICS:
            pts = [(t, _nanmean([r[f"curve_{k}"][j] for r in c.rows])) for j, t in enumerate(grid)]
            curves[k] = [(t, v) for t, v in pts if v is not None]
        out.append(
            {
                "cell_id": c.cell_id,
                "attack": c.info["attack"],
                "model": c.shown["model"],
                "data": c.shown["data"],
                "threshold": c.config["threshold"],
                "images": [r["image"] for r in c.rows],
                "fooled": [bool(r["fooled"]) for r in c.rows],
                "per_image": [{k: r[k] for k in METRICS} for r in c.rows],
                "mean": means,
                "curves": curves,
                "expected": c.expected,
                "stored": c.stored,
                "computed": c.computed,
            }
        )
    return {"experiment": NAME, "cells": out}


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """Per cell: the overlap metrics of every image at the threshold (Table I), and means."""
    out = []
    for c in doc["cells"]:
        body = [
            [n, str(f), *(fmt(r[k], 3) for k in METRICS)]
            for n, f, r in zip(c["images"], c["fooled"], c["per_image"], strict=True)
        ]
        body.append(["mean", "", *(fmt(c["mean"][k], 3) for k in METRICS)])
        title = f"{c['attack']}: overlap at noise threshold {c['threshold']}"
        out.append(ReportTable(title, ["image", "fooled", *METRICS], body))
    return out


def report(
    doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None = None
) -> ReportParts:
    """Fig. 3-style rows per image (from the stored figures), the table and the curves."""
    plots = [
        Plot(
            f"{c['attack']}: overlap metrics against the noise threshold",
            "noise threshold",
            "mean over images",
            [(k, v) for k, v in c["curves"].items()],
        )
        for c in doc["cells"]
    ]
    figures = stored_figures(cells, store)
    intro = ", ".join(f"{c['model']} on {c['data']}, {c['attack']}" for c in doc["cells"])
    return ReportParts("advsr explain", intro, tables(doc), plots, figures)


EXPLAIN = register_experiment(
    Experiment(
        name=NAME,
        config=ExplainConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        report=report,
        description="SSIM maps, CAMs and perturbation/saliency overlap (PGAP paper Table I)",
    )
)
