"""The ``backdoor`` experiment: a RefSR model file evaluated with one trigger (BadRefSR).

One cell evaluates one model written by ``advsr train-refsr`` with one trigger on one set of
``(LR, Ref, HR)`` triplets: by default the trigger it was trained with and the evaluation
set of its training (the held-out tiles when it trained on ``split=train``). A p = 0
baseline is evaluated with each trigger of the poisoned models beside it. Rows per triplet:
clean PSNR/SSIM against HR (functionality), triggered PSNR/SSIM against the target (attack
effectiveness), the untriggered output against the target, and the attack success (see
:mod:`advsr.backdoor.evaluate`). The summary is the paper's Table 1 (one row per trigger and
poisoning rate) and the curves over p (Fig. 3); each cell keeps the image grid of its first
triplets for the report, and what a flat image of the target's mean colour scores against
the target (the floor a backdoor must clear).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from advsr.backdoor.evaluate import BACKDOOR_METRICS
from advsr.engine.cell import (
    MAX_BATCH,
    CellConfig,
    CellRow,
    CellRun,
    Experiment,
    Item,
    Plan,
    ReportParts,
    cell_identity,
    figure_artifacts,
    register_experiment,
    stored_figures,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.report import ReportTable
from advsr.settings import NEUTRAL, WEIGHTS

if TYPE_CHECKING:
    import torch

    from advsr.backdoor.poison import RefSRTriplets

__all__ = ["BackdoorConfig", "backdoor_cells", "training_of"]

NAME = "backdoor"


class BackdoorConfig(CellConfig):
    """Settings of a ``backdoor`` cell (see the field docstrings)."""

    model_file: Annotated[str, WEIGHTS]
    """A model written by advsr train-refsr."""
    trigger: str | None = None
    """Trigger spec (default: the one the model was trained with)."""
    target: str | None = None
    """The attacker's target (default: the training target)."""
    data: str | None = None
    """Evaluation triplets (default: the training data)."""
    hr_size: int | None = Field(None, ge=8)
    """HR size (default: the training size)."""
    split: Literal["all", "train", "test"] | None = None
    """all, train or test (default: test when the model trained on split train, else all)."""
    batch_size: Annotated[int, NEUTRAL] = Field(4, ge=1, le=MAX_BATCH)
    """Triplets per forward pass."""
    crop_border: int | None = Field(None, ge=0)
    """Pixels cropped before scoring (default: the scale)."""
    asr_psnr: float = Field(20.0, ge=0.0)
    """PSNR_Y (dB) a triggered output must reach to count as a success."""
    asr_ssim: float = Field(0.7, ge=-1.0, le=1.0)
    """SSIM_Y a triggered output must reach to count as a success."""
    figures: Annotated[int, NEUTRAL] = Field(1, ge=0)
    """Image grids kept for the report (the first N triplets)."""


def training_of(path: str | Path) -> dict[str, Any]:
    """The training settings a ``train-refsr`` model file records.

    Raises:
        InputError: not a model written by ``advsr train-refsr``.
    """
    from advsr.io import read_safetensors_metadata

    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such model file: {p}")
    meta = read_safetensors_metadata(p)
    try:
        train = json.loads(meta["advsr_train"])
        if not isinstance(train, dict):
            raise ValueError
    except (KeyError, ValueError):
        raise InputError(f"{p} was not written by advsr train-refsr (no training record)") from None
    return train


def _evaluation(cfg: BackdoorConfig, train: dict[str, Any]) -> dict[str, Any]:
    trained_on = train.get("split", "all")
    return {
        "source": cfg.data or train["data"],
        "scale": int(train["scale"]),
        "hr_size": cfg.hr_size or int(train["hr_size"]),
        "tiles": bool(train.get("tiles", False)),
        "split": cfg.split or ("test" if trained_on == "train" else "all"),
        "ref_policy": train.get("ref_policy", "resize"),
        "ref_shift": int(train.get("ref_shift", 0)),
    }


def _cell_info(
    train: dict[str, Any],
    ev: dict[str, Any],
    trigger_spec: str,
    target_name: str,
    triplets: int,
    flat: tuple[float, float],
) -> dict[str, Any]:
    """What a cell stores beside its rows: the model's poisoning rate and trigger, the
    trigger and set it is evaluated with, and the flat-target floor ``(PSNR, SSIM)``.

    Args:
        train: the model file's training record (:func:`training_of`).
        ev: the evaluation set's settings (:func:`_evaluation`).
        trigger_spec: the trigger evaluated.
        target_name: the target as given (a name or a path).
        triplets: how many triplets are evaluated.
        flat: what a flat image of the target's mean colour scores against it.
    """
    from advsr.backdoor.triggers import trigger_label
    from advsr.files import value_label

    rate = float(train.get("rate", 0.0))
    return {
        "rate": rate,
        "trained_trigger": train.get("trigger"),
        "trigger": trigger_label(trigger_spec),
        "evaluation": {**ev, "source": value_label("data", ev["source"])},
        "triplets": triplets,
        "target": value_label("file", target_name) if "/" in target_name else target_name,
        "flat_target": list(flat),
    }


def _backdoor_rows(
    ctx: Context,
    cfg: BackdoorConfig,
    device: torch.device,
    triplets: RefSRTriplets,
    trigger: Any,
    target: Path,
    items: list[Item],
) -> Iterator[Any]:
    """A cell's rows: the image grids of its first ``figures`` triplets, then one row of
    :data:`BACKDOOR_METRICS` and the success per triplet.

    Args:
        ctx: the run's context (caches the loaded model).
        cfg: the cell's settings.
        device: where the model runs.
        triplets: the evaluation triplets.
        trigger: the trigger (:func:`advsr.backdoor.attacker.make_trigger`).
        target: the attacker's target image file.
        items: one item per triplet.
    """
    from advsr.backdoor.evaluate import evaluate_backdoor, image_grid
    from advsr.models.refsr import load_refsr

    model = ctx.cached(
        ("refsr", cfg.model_file, str(device)), lambda: load_refsr(cfg.model_file, device)
    )
    result = evaluate_backdoor(
        model, triplets, trigger, target, batch_size=cfg.batch_size,
        crop_border=cfg.crop_border, asr_psnr=cfg.asr_psnr, asr_ssim=cfg.asr_ssim,
    )  # fmt: skip
    shown = list(range(min(cfg.figures, len(items))))
    for fig in image_grid(model, triplets, trigger, shown, target):
        yield from figure_artifacts(fig.title, fig.images)
    for i, item in enumerate(items):
        metrics = {k: float(getattr(result, k)[i]) for k in BACKDOOR_METRICS}
        metrics["success"] = float(result.success[i])
        yield CellRow(i, item.key, item.name, metrics, 0.0)


def _plan(cfg: BackdoorConfig, ctx: Context) -> Plan:
    from advsr.backdoor.attacker import make_trigger, target_path
    from advsr.backdoor.evaluate import flat_target_score
    from advsr.backdoor.poison import RefSRTriplets
    from advsr.backdoor.triggers import trigger_identity, trigger_label
    from advsr.models.refsr import load_refsr

    train = training_of(cfg.model_file)
    device = ctx.device(cfg.device)
    ctx.cached(("refsr", cfg.model_file, str(device)), lambda: load_refsr(cfg.model_file, device))
    ev = _evaluation(cfg, train)
    triplets = ctx.cached(("triplets", json.dumps(ev)), lambda: RefSRTriplets(**ev))
    trigger_spec = cfg.trigger or train["trigger"]
    trigger = make_trigger(trigger_spec)
    target_name = cfg.target or train["target"]
    target = target_path(target_name)
    if not target.is_file():
        raise InputError(f"no such target image: {target_name}")
    flat = flat_target_score(triplets, target, crop_border=cfg.crop_border)
    items = [Item(t.name, t.name) for t in triplets.triplets]
    data_id = (
        ctx.data_identity(ev["source"]) if ev["source"] not in ("self", "stereo") else ev["source"]
    )
    extra = {
        "evaluation": {**ev, "source": data_id},
        "trigger": trigger_identity(trigger_spec),
        "target": ctx.file_hash(target),
        "data": None,
    }
    info = _cell_info(train, ev, trigger_spec, target_name, len(items), flat)

    def compute(skip: set[str]) -> Iterator[Any]:
        yield from _backdoor_rows(ctx, cfg, device, triplets, trigger, target, items)

    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=BACKDOOR.version, extra=extra),
        items,
        compute,
        f"backdoor {Path(cfg.model_file).name} with {trigger_label(trigger_spec)}",
        info,
    )


def backdoor_cells(
    model_files: list[str], baseline: str | None, base: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The cells of a Table 1: each poisoned model with its own trigger, then the p = 0
    baseline with each of those triggers."""
    cells = [(NAME, {**base, "model_file": f}) for f in model_files]
    if baseline is not None:
        triggers = list(dict.fromkeys(training_of(f)["trigger"] for f in model_files))
        cells += [(NAME, {**base, "model_file": baseline, "trigger": t}) for t in triggers]
    return cells


def _means(rows: list[dict[str, Any]]) -> dict[str, float]:
    out = {k: statistics.fmean(r[k] for r in rows) for k in BACKDOOR_METRICS}
    out["asr"] = statistics.fmean(r["success"] for r in rows)
    return out


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """Table 1 rows, the per-(trigger, p) means, the flat-target floors, the sets."""
    from advsr.backdoor.evaluate import BACKDOOR_HEADER, backdoor_table

    results = {}
    for c in cells:
        trigger = c.info.get("trigger", c.identity["trigger"])
        results[(trigger, float(c.info["rate"]))] = _means(c.rows)
    floors = {c.info["target"]: c.info["flat_target"] for c in cells}
    sets = {json.dumps(c.info["evaluation"], sort_keys=True): c.info["triplets"] for c in cells}
    return {
        "experiment": NAME,
        "header": list(BACKDOOR_HEADER),
        "rows": backdoor_table(results),
        "flat_target": [{"target": t, "psnr": p, "ssim": s} for t, (p, s) in floors.items()],
        "evaluation_sets": [{**json.loads(k), "triplets": n} for k, n in sets.items()],
        "results": [{"trigger": t, "rate": r, **m} for (t, r), m in results.items()],
        "cells": [c.brief() for c in cells],
    }


def floor_text(doc: dict[str, Any]) -> str:
    """What a flat image of each target's mean colour scores against it."""
    return "; ".join(
        f"a flat image of the mean colour of {f['target']!r} scores {f['psnr']:.2f} dB / "
        f"{f['ssim']:.3f} against it"
        for f in doc["flat_target"]
    )


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """Table 1: clean and triggered quality (Y), attack success."""
    title = "BadRefSR: clean PSNR/SSIM vs HR, triggered vs target"
    return [ReportTable(title, doc["header"], doc["rows"])]


def report(
    doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None = None
) -> ReportParts:
    """Table 1, the curves over p (Fig. 3) and the stored image grids."""
    from advsr.backdoor.evaluate import rate_plots

    results = {(r["trigger"], r["rate"]): r for r in doc["results"]}
    figures = stored_figures(cells, store)
    evaluated = "; ".join(
        f"{e['source']} ({'tiles' if e['tiles'] else 'whole images'}, {e['hr_size']} px HR, "
        f"split {e['split']}, Ref shift {e['ref_shift']} px): {e['triplets']} triplets"
        for e in doc["evaluation_sets"]
    )
    intro = (
        "BadRefSR: models trained on poisoned triplets; p = 0 rows are the baseline. "
        f"Evaluated on {evaluated}. For reference, {floor_text(doc)}."
    )
    return ReportParts("advsr backdoor", intro, tables(doc), rate_plots(results), figures)


BACKDOOR = register_experiment(
    Experiment(
        name=NAME,
        config=BackdoorConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        report=report,
        description="BadRefSR: clean and triggered quality of a RefSR model file, attack success",
    )
)
