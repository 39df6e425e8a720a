"""``advsr perceptual``: fooling rate at matched image quality (PGAP paper, Tables II and III).

Each method's own parameter is swept (``eps`` of FGSM, PGD, FGM-L2, PGD-L2; ``eps2`` of PGAP
and FPGAP) on the images the classifier gets right; for every point the fooling rate and the
mean SSIM and PSNR of ``x_adv`` against ``x`` are recorded (one store cell per method and
parameter, rows per image). The fooling rate of each method at a common mean SSIM (Table II:
0.998 for CIFAR-10) and at a common mean PSNR (Table III) is then read off its sweep by
linear interpolation between the two sweep points that bracket the target; a target outside
a method's swept range gives no value (never an extrapolation).

SSIM here is :func:`advsr.metrics.ssim` on RGB (11x11 Gaussian window, sigma 1.5, the
``[0, 255]`` constants, the mean of the valid map over channels: skimage's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``);
PSNR on RGB with peak 255. The paper does not state its SSIM settings; its code base
(skimage at the time) defaults to a 7x7 uniform window, which scores differently, so compare
levels, not third decimals.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from advsr.attacks.budget import BUDGET, format_budget
from advsr.engine.attack_cells import ClassifierCellConfig, attacked_batches, items_of
from advsr.engine.cell import (
    ATTACK,
    CellRow,
    CellRun,
    Experiment,
    Plan,
    ReportParts,
    cell_identity,
    register_experiment,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.experiments.attack_clf import classifier_attack
from advsr.experiments.defend import select_correct
from advsr.metrics import psnr, ssim
from advsr.report import Plot, ReportTable, fmt
from advsr.settings import NEUTRAL

__all__ = ["DEFAULT_SWEEPS", "PerceptualConfig", "at_level", "sweep_cells"]

NAME = "perceptual"

DEFAULT_SWEEPS: dict[str, tuple[float, ...]] = {
    "fgsm": tuple(v / 255 for v in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)),
    "fgm-l2": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
    "pgd": tuple(v / 255 for v in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)),
    "pgd-l2": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
    "fpgap": (0.0025, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2),
    "pgap": (0.0025, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2),
}


class PerceptualConfig(ClassifierCellConfig):
    """One sweep point: a method at one parameter value, on the first ``limit`` correctly
    classified images; ``ssim_target`` / ``psnr_target`` are the common levels the summary
    reads the fooling rates at (None: the middle of the PSNR range every sweep covers)."""

    limit: int | None = Field(200, ge=1)
    """The first N correctly classified images."""
    attack: Annotated[str, ATTACK] = "fpgap"
    """The method of this sweep point."""
    eps: Annotated[float | None, ATTACK, BUDGET] = Field(0.05, gt=0.0)
    """Its parameter (eps, or eps2 of the perceptual attacks)."""
    ssim_target: Annotated[float, NEUTRAL] = Field(0.998, gt=0.0, lt=1.0)
    """Common mean SSIM of Table II."""
    psnr_target: Annotated[float | None, NEUTRAL] = Field(None, gt=0.0)
    """Common mean PSNR of Table III (default: the middle of the range all sweeps cover)."""


def _plan(cfg: PerceptualConfig, ctx: Context) -> Plan:
    attack = classifier_attack(cfg)
    if attack.entry.norm == "none":
        raise InputError(f"{attack.name} has no budget to sweep; use a budgeted attack")
    data, _ = select_correct(cfg, ctx)
    device = ctx.device(cfg.device)
    model = ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed)
    items = items_of(data.keys, data.names)

    def compute(skip: set[str]) -> Iterator[CellRow]:
        for b in attacked_batches(model, data, items, attack, cfg, skip, device):
            res = b.result
            s, p = ssim(res.x_adv, b.x), psnr(res.x_adv, b.x)
            per = b.seconds_per_item()
            for j, (i, extra) in enumerate(zip(b.idx, res.per_image(), strict=True)):
                metrics = {
                    **extra,
                    "fooled": float(res.success[j]),
                    "ssim": float(s[j]),
                    "psnr": float(p[j]),
                }
                yield CellRow(i, items[i].key, items[i].name, metrics, per)

    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=PERCEPTUAL.version, attack=attack),
        items,
        compute,
        attack.label,
        {"method": attack.name, "param": attack.eps, "norm": attack.entry.norm},
        batch=cfg.batch_size,
    )


def _finite_mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v != float("inf")]
    return statistics.fmean(vals) if vals else float("inf")


def at_level(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """Linear interpolation of ``y`` at ``x = target`` between the bracketing points.

    Args:
        points: ``(quality, fooling rate)`` pairs of one method's sweep.
        target: the common quality level.

    Returns:
        the interpolated fooling rate, or None when ``target`` is outside the points' range.

    Example:
        >>> round(at_level([(0.99, 0.9), (0.999, 0.5)], 0.998), 6)
        0.544444
    """
    pts = sorted(points)
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x0 <= target <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (target - x0) / (x1 - x0)
    if pts and pts[0][0] == target:
        return pts[0][1]
    return None


def sweep_cells(
    base: dict[str, Any],
    sweeps: Mapping[str, Sequence[float | str]],
    limits: dict[str, int] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The cells of a sweep: one per method and value (``limits``: fewer images per method,
    e.g. for the slow PGAP)."""
    cells = []
    for method, values in sweeps.items():
        limit = base.get("limit", 200)
        if limits and method in limits:
            limit = min(limits[method], limit) if limit else limits[method]
        for v in values:
            cells.append((NAME, {**base, "attack": method, "eps": v, "limit": limit}))
    return cells


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """Each method's sweep, then the Table II (SSIM) and Table III (PSNR) rows."""
    points: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        rows = c.rows
        points.setdefault(c.info["method"], []).append(
            {
                "param": c.info["param"],
                "norm": c.info["norm"],
                "images": len(rows),
                "fooling_rate": statistics.fmean(r["fooled"] for r in rows),
                "failed": float(sum(r.get("failed", 0.0) for r in rows)),
                "ssim": statistics.fmean(r["ssim"] for r in rows),
                "psnr": _finite_mean([r["psnr"] for r in rows]),
            }
        )
    for pts in points.values():
        pts.sort(key=lambda p: p["param"])
    ssim_target = cells[0].config["ssim_target"] if cells else 0.998
    psnr_target = cells[0].config["psnr_target"] if cells else None
    if psnr_target is None:  # the middle of the PSNR range every sweep covers
        finite = [[p["psnr"] for p in pts if p["psnr"] != float("inf")] for pts in points.values()]
        if finite and all(finite):
            lo, hi = max(min(f) for f in finite), min(max(f) for f in finite)
            psnr_target = 0.5 * (lo + hi) if lo <= hi else None
    table2 = {
        m: at_level([(p["ssim"], p["fooling_rate"]) for p in pts], ssim_target)
        for m, pts in points.items()
    }
    table3 = {
        m: at_level([(p["psnr"], p["fooling_rate"]) for p in pts], psnr_target)
        if psnr_target is not None
        else None
        for m, pts in points.items()
    }
    return {
        "experiment": NAME,
        "model": cells[0].shown["model"] if cells else None,
        "data": cells[0].shown["data"] if cells else None,
        "images": max((c.expected for c in cells), default=0),
        "ssim_target": ssim_target,
        "psnr_target": psnr_target,
        "table2": table2,
        "table3": table3,
        "sweeps": points,
        "cells": [c.brief() for c in cells],
    }


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """Tables II and III (fooling rate at the common levels) and the sweeps."""
    methods = list(doc["sweeps"])
    level = "-" if doc["psnr_target"] is None else f"{doc['psnr_target']:.2f}"
    return [
        ReportTable(
            f"fooling rate at a common quality, {doc['images']} images (Tables II and III)",
            ["level", *methods],
            [
                [f"SSIM {doc['ssim_target']:g}", *(fmt(doc["table2"][m], 3) for m in methods)],
                [f"PSNR {level} dB", *(fmt(doc["table3"][m], 3) for m in methods)],
            ],
        ),
        ReportTable(
            "sweeps",
            ["method", "param", "images", "fooling rate", "failed", "mean SSIM", "mean PSNR"],
            [
                [
                    m,
                    format_budget(p["param"], p["norm"]),
                    str(p["images"]),
                    f"{p['fooling_rate']:.3f}",
                    f"{p['failed']:g}",
                    f"{p['ssim']:.5f}",
                    f"{p['psnr']:.2f}",
                ]
                for m in methods
                for p in doc["sweeps"][m]
            ],
        ),
    ]


def report(
    doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None = None
) -> ReportParts:
    """The tables and the fooling-rate-vs-quality curves."""
    methods = list(doc["sweeps"])
    plots = [
        Plot(
            f"fooling rate vs mean {q.upper()}",
            f"mean {q.upper()}",
            "fooling rate",
            [(m, [(p[q], p["fooling_rate"]) for p in doc["sweeps"][m]]) for m in methods],
        )
        for q in ("ssim", "psnr")
    ]
    intro = f"{doc['model']} on {doc['data']}: {doc['images']} correctly classified images."
    return ReportParts("advsr perceptual", intro, tables(doc), plots)


PERCEPTUAL = register_experiment(
    Experiment(
        name=NAME,
        config=PerceptualConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        report=report,
        description="fooling rate at a common SSIM/PSNR (PGAP paper Tables II and III)",
    )
)
