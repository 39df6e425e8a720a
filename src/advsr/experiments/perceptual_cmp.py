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

import functools
import itertools
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from pydantic import Field

from advsr.data.labelled import LabelledSet, open_labelled
from advsr.devices import resolve_device
from advsr.errors import InputError
from advsr.experiments.attack_clf import ClassifierCellConfig, check_attack_name, run_clf_attack
from advsr.experiments.defend import correctly_classified
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import validate
from advsr.experiments.store import ResultStore
from advsr.io import file_sha256
from advsr.metrics import psnr, ssim
from advsr.models.classifiers import create_classifier

__all__ = ["DEFAULT_SWEEPS", "PerceptualConfig", "at_level", "run_perceptual"]

EXPERIMENT = "perceptual"

DEFAULT_SWEEPS: dict[str, tuple[float, ...]] = {
    "fgsm": tuple(v / 255 for v in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)),
    "fgm-l2": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
    "pgd": tuple(v / 255 for v in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)),
    "pgd-l2": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
    "fpgap": (0.0025, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2),
    "pgap": (0.0025, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2),
}


class PerceptualConfig(ClassifierCellConfig):
    """One sweep point: a method at one parameter value."""

    limit: int = Field(200, ge=1)
    attack: str = "fpgap"
    eps: float = Field(0.05, gt=0.0)

    @property
    def loss(self) -> str:
        """Cross-entropy for the norm-bounded attacks (the perceptual ones use their own)."""
        return "ce"

    @property
    def kappa(self) -> float:
        """Unused by cross-entropy."""
        return 0.0


def _rows(
    model: torch.nn.Module, data: LabelledSet, cfg: PerceptualConfig, skip: set[str]
) -> Iterator[CellRow]:
    device = next(model.parameters()).device
    todo = [i for i, n in enumerate(data.names) if n not in skip]
    for start in range(0, len(todo), cfg.batch_size):
        t0 = time.perf_counter()
        idx = todo[start : start + cfg.batch_size]
        x, y = data.x[idx].to(device), data.y[idx].to(device)
        out = run_clf_attack(model, cfg, x, y, idx[0])
        fooled = out.success
        s, p = ssim(out.x_adv, x), psnr(out.x_adv, x)
        per = (time.perf_counter() - t0) / len(idx)
        for j, i in enumerate(idx):
            yield CellRow(
                i,
                data.names[i],
                {"fooled": float(fooled[j]), "ssim": float(s[j]), "psnr": float(p[j])},
                per,
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


def run_perceptual(
    store: ResultStore,
    base: dict[str, Any],
    sweeps: Mapping[str, Sequence[float]],
    *,
    ssim_target: float = 0.998,
    psnr_target: float | None = None,
    limits: dict[str, int] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Every sweep point, then the Table II (SSIM) and Table III (PSNR) rows.

    Args:
        store: result store (resume per image).
        base: settings shared by every point (model, data, limit, steps, seed, ...).
        sweeps: method -> parameter values.
        ssim_target: the common mean SSIM of Table II.
        psnr_target: the common mean PSNR of Table III (None: the middle of the PSNR range
            that every method's sweep covers; no value when they share none).
        limits: per-method image limits (e.g. fewer images for the slow PGAP).

    Raises:
        AdvsrError: unknown method, bad value, model or dataset.
    """
    for method in sweeps:
        if check_attack_name(method):
            raise InputError(f"{method} has no budget to sweep; use a budgeted attack")
    cfg0 = validate(PerceptualConfig, {**base, "attack": next(iter(sweeps))})
    device = resolve_device(cfg0.device)
    model = create_classifier(cfg0.model, cfg0.weights).to(device).eval()
    full = open_labelled(cfg0.data, pattern=cfg0.pattern, per_class=cfg0.per_class)
    data, _ = correctly_classified(model, full, cfg0.limit, device)
    if not data.names:
        raise InputError(f"{cfg0.model} classifies none of the images of {cfg0.data} correctly")
    points: dict[str, list[dict[str, Any]]] = {}
    for method, values in sweeps.items():
        n = min((limits or {}).get(method, len(data.names)), len(data.names))
        sub = data if n == len(data.names) else data.subset(n)
        points[method] = []
        for v in values:
            cfg = validate(PerceptualConfig, {**base, "attack": method, "eps": v})
            config = {
                **cfg.model_dump(exclude={"weights", "device", "batch_size"}),
                "images": n,
                "weights_sha256": file_sha256(cfg.weights) if cfg.weights else None,
            }
            res: CellResult = run_cell(
                store,
                EXPERIMENT,
                config,
                sub.names,
                functools.partial(_rows, model, sub, cfg),
                description=f"{method} @ {v:g}",
                progress=progress,
            )
            rows = res.rows
            points[method].append(
                {
                    "param": v,
                    "images": len(rows),
                    "fooling_rate": statistics.fmean(r["fooled"] for r in rows),
                    "ssim": statistics.fmean(r["ssim"] for r in rows),
                    "psnr": _finite_mean([r["psnr"] for r in rows]),
                }
            )
    if psnr_target is None:  # the middle of the PSNR range every sweep covers
        finite = [[p["psnr"] for p in pts if p["psnr"] != float("inf")] for pts in points.values()]
        if all(finite):
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
        "images": len(data.names),
        "ssim_target": ssim_target,
        "psnr_target": psnr_target,
        "table2": table2,
        "table3": table3,
        "sweeps": points,
    }
