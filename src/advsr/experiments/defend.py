"""The ``defend`` experiment: accuracy of a defended classifier, non-adaptive and adaptive.

As in the defense papers, only images the bare classifier gets right are used (the first
``limit`` of them in dataset order). A cell is one (attack, budget, defense, mode):

* ``non-adaptive`` - the attack is crafted on the bare classifier (the papers' setting), then
  the defended classifier ``classifier o defense`` classifies the adversarial images;
* ``adaptive`` - the attack is crafted on the defended classifier itself, through
  :func:`advsr.defenses.adaptive.adaptive`: BPDA for non-differentiable defenses, EOT over
  ``eot`` draws for stochastic ones (Athalye et al. 2018).

Attack ``none`` gives the clean accuracy under the defense. Rows per image:
``defended_correct`` (the defended classifier is right on ``x_adv``: the defense "destroyed"
the attack), ``adv_correct`` (the bare classifier is right on ``x_adv``: the "No Defense"
column), ``l2``, ``linf`` and ``failed`` of the attack. Stochastic defenses are evaluated
with one draw from a generator seeded per image batch, independent of the attack's draws.

Non-adaptive adversarial examples do not depend on the defense, so they are computed once per
(attack, batch) in a run and shared by every defense's cell.

Example:
    >>> from advsr.engine.store import ResultStore
    >>> from advsr.engine.driver import run_cells
    >>> cells = [("defend", {"attack": a, "eps": 8 / 255, "defense": d, "limit": 8})
    ...          for d in ("none", "median:size=3x3") for a in ("none", "fgsm")]
    >>> doc = summarise(run_cells(cells, ResultStore(":memory:"), progress=False))
    >>> doc["tables"]["non-adaptive"]["columns"]
    ['clean', 'fgsm@8/255']
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from advsr.attacks.base import Attack, AttackResult
from advsr.attacks.budget import BUDGET
from advsr.attacks.probes import (
    correct_over_draws,
    probe_batch,
    probe_time_share,
    random_flips,
)
from advsr.defenses.adaptive import adaptive, defend
from advsr.defenses.registry import defense_identity, defense_label
from advsr.engine.attack_cells import (
    ClassifierCellConfig,
    ClassifierDataConfig,
    check_targets,
    correctly_classified,
    image_generator,
    items_of,
    todo_batches,
)
from advsr.engine.cell import (
    ATTACK,
    MAX_DRAWS,
    CellRow,
    CellRun,
    Experiment,
    Item,
    Plan,
    ReportParts,
    cell_identity,
    register_experiment,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.experiments.attack_clf import classifier_attack
from advsr.memory import MicroBatched
from advsr.report import Plot, ReportTable, fmt

__all__ = ["DefendConfig", "l2_curve", "select_correct", "summarise"]

NAME = "defend"
MODES = ("non-adaptive", "adaptive")


class DefendConfig(ClassifierCellConfig):
    """Settings of one ``defend`` cell (``attack`` ``none``: clean accuracy)."""

    attack: Annotated[str, ATTACK] = "none"
    """Attack name or name@budget; none gives the clean accuracy under the defense."""
    eps: Annotated[float | None, ATTACK, BUDGET] = Field(None, ge=0.0)
    """Budget of an attack named without @."""
    defense: str = "none"
    """Defense spec, e.g. median:size=3x3 (see `advsr list defenses`)."""
    mode: Literal["non-adaptive", "adaptive"] = "non-adaptive"
    """non-adaptive: crafted on the bare classifier; adaptive: through the defense
    (BPDA, EOT)."""
    eot: int = Field(10, ge=1, le=MAX_DRAWS)
    """EOT draws per step (adaptive attacks on stochastic defenses)."""
    draws: int = Field(10, ge=1, le=MAX_DRAWS)
    """Stochastic defenses: an image counts as robust only if the defended classifier is
    right on it in every one of this many fresh draws (draws_correct)."""


def select_correct(cfg: ClassifierDataConfig, ctx: Context) -> tuple[Any, float]:
    """The first ``limit`` images the bare classifier gets right, and its accuracy on the
    images scanned (once per classifier and data in a run)."""
    device = ctx.device(cfg.device)
    key = (
        "correct", cfg.model, cfg.weights, cfg.init_seed, cfg.data, cfg.pattern, cfg.per_class,
        cfg.limit,
    )  # fmt: skip

    def build() -> tuple[Any, float]:
        model = ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed)
        data = ctx.labelled(cfg.data, cfg.pattern, cfg.per_class, model)
        return correctly_classified(model, data, cfg.limit, device)

    return ctx.cached((*key, str(device)), build)


def _plan(cfg: DefendConfig, ctx: Context) -> Plan:
    attack = None if cfg.attack == "none" else classifier_attack(cfg)
    device = ctx.device(cfg.device)
    defense = None if cfg.defense == "none" else ctx.defense(cfg.defense, device)
    data, accuracy = select_correct(cfg, ctx)
    check_targets(ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed), attack)
    model = ctx.cached(
        ("micro-batched", id(ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed))),
        lambda: MicroBatched(
            ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed), cfg.model
        ),
    )
    adaptive_cell = cfg.mode == "adaptive" and defense is not None and attack is not None
    mode = "adaptive" if adaptive_cell else "non-adaptive"
    stochastic = defense is not None and defense.stochastic
    extra = {
        "defense": defense_identity(cfg.defense) if defense is not None else "none",
        "mode": mode,
        "eot": cfg.eot if adaptive_cell and stochastic else None,
        "draws": cfg.draws if stochastic else None,
        **cfg.probe_identity(),
    }
    if stochastic:  # draws per image since version 3's per-batch draws (advsr.memory)
        extra["random_draws"] = "per-image"
    items = items_of(data.keys, data.names)

    def compute(skip: set[str]) -> Iterator[CellRow]:
        yield from _rows(ctx, model, data, items, attack, defense, cfg, adaptive_cell, skip)

    label = attack.label if attack is not None else "clean"
    shown = defense_label(cfg.defense) if defense is not None else "none"
    return Plan(
        cfg,
        cell_identity(
            cfg, ctx, version=DEFEND.version, attack=attack, stochastic=stochastic, extra=extra
        ),
        items,
        compute,
        f"{label} vs {shown} ({mode})",
        {"clean_accuracy_bare": accuracy, "label": label, "defense": shown},
        batch=cfg.batch_size,
    )


def _rows(
    ctx: Context,
    model: torch.nn.Module,
    data: Any,
    items: list[Item],
    attack: Attack | None,
    defense: Any,
    cfg: DefendConfig,
    adaptive_cell: bool,
    skip: set[str],
) -> Iterator[CellRow]:
    device = ctx.device(cfg.device)
    stochastic = defense is not None and defense.stochastic
    for idx in todo_batches(items, cfg.batch_size, skip):
        t0 = time.perf_counter()
        x, y = data.x[idx].to(device), data.y[idx].to(device)
        bare_model = model.module if isinstance(model, MicroBatched) else model
        judge = (
            model
            if defense is None
            else defend(bare_model, defense, seed=cfg.seed * 1_000_003 + idx[0] + 7919).eval()
        )
        probes: dict[str, torch.Tensor] = {}
        probe_seconds = 0.0
        if attack is None:
            x_adv, failed = x, torch.zeros(len(idx))
        else:
            target, res = _craft(
                ctx, model, bare_model, attack, defense, x, y, idx, cfg, adaptive_cell
            )
            x_adv, failed = res.x_adv, res.failed.float()
        with torch.no_grad():
            if adaptive_cell and not stochastic:  # the attacked model is the deployed one:
                defended = res.predictions.to(y.device) == y  # its verdict, one pass saved
            else:
                defended = judge(x_adv).argmax(1) == y
            bare = model(x_adv).argmax(1) == y
        if attack is not None:
            t1 = time.perf_counter()
            probes = _probes(
                ctx,
                model,
                target,
                judge,
                defense,
                x,
                y,
                attack,
                res,
                idx,
                cfg,
                adaptive_cell,
                defended,
            )
            probe_seconds = time.perf_counter() - t1
        if stochastic:  # the draw above and draws - 1 fresh ones
            more = correct_over_draws(judge, x_adv, y, cfg.draws - 1)
            probes["draws_correct"] = more * defended.float().cpu()
            if cfg.probes != "off" and "random_flip" not in probes:
                probes["random_flip"] = random_flips(judge, x_adv)
        d = (x_adv - x).flatten(1)
        per = (time.perf_counter() - t0) / len(idx)
        yield from _batch_rows(items, idx, d, failed, defended, bare, probes, probe_seconds, per)


def _batch_rows(
    items: list[Item],
    idx: list[int],
    d: torch.Tensor,
    failed: torch.Tensor,
    defended: torch.Tensor,
    bare: torch.Tensor,
    probes: dict[str, torch.Tensor],
    probe_seconds: float,
    per: float,
) -> Iterator[CellRow]:
    """One row per image of a batch: the verdicts, the perturbation's size, the probes.

    Args:
        items: the cell's items.
        idx: the batch's item indices.
        d: the perturbations ``x_adv - x``, flattened.
        failed: the attack failed on the image (1.0) or not.
        defended: the defended classifier is right on the adversarial image.
        bare: the bare classifier is right on it.
        probes: the per-image probes (:func:`_probes`, draws), by name.
        probe_seconds: the batch's time spent in the probes.
        per: seconds per image of the batch.

    Shape:
        ``d`` (the perturbations, flattened) ``(B, 3 * H * W)``; ``failed``, ``defended``,
        ``bare`` and each probe ``(B,)``.
    """
    for j, i in enumerate(idx):
        metrics = {
            "defended_correct": float(defended[j]),
            "adv_correct": float(bare[j]),
            "l2": float(d[j].double().norm()),
            "linf": float(d[j].abs().max()),
            "failed": float(failed[j]),
            "probe_seconds": probe_seconds / len(idx),
            **{k: float(v[j]) for k, v in probes.items()},
        }
        yield CellRow(i, items[i].key, items[i].name, metrics, per)


def _craft(
    ctx: Context,
    model: torch.nn.Module,
    bare_model: torch.nn.Module,
    attack: Attack,
    defense: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    idx: list[int],
    cfg: DefendConfig,
    adaptive_cell: bool,
) -> tuple[torch.nn.Module, AttackResult]:
    """The model the attack is crafted on and its result on one batch: the bare classifier
    (memoised per attack and batch, so every defense's cell shares it) or, in an adaptive
    cell, the defended one through :func:`adaptive` (BPDA, EOT).

    Args:
        ctx: the run's context (its memo holds the shared non-adaptive results).
        model: the classifier as the cell runs it (micro-batched).
        bare_model: the same classifier unwrapped (what a defense is put in front of).
        attack: the attack.
        defense: the defense (an adaptive cell has one).
        x: the batch's images.
        y: their labels.
        idx: the batch's item indices in the cell.
        cfg: the cell's settings (seed, EOT draws).
        adaptive_cell: craft through the defense.

    Shape:
        ``x`` ``(B, 3, H, W)``, ``y`` ``(B,)``.
    """
    if not adaptive_cell:
        key = (
            "non-adaptive",
            id(model),
            json.dumps(attack.identity()),
            cfg.seed,
            tuple(idx),
        )
        return model, ctx.memo(key, partial(_attack, attack, model, x, y, cfg, idx[0]))
    target = defend(bare_model, adaptive(defense, cfg.eot), seed=cfg.seed + idx[0])
    return target, _attack(attack, target, x, y, cfg, idx[0])


def _probes(
    ctx: Context,
    model: torch.nn.Module,
    target: torch.nn.Module,
    judge: torch.nn.Module,
    defense: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    res: AttackResult,
    idx: list[int],
    cfg: DefendConfig,
    adaptive_cell: bool,
    defended: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The gradient-masking probes of one attacked batch (:func:`probe_batch`), judged on
    the defended classifier ``judge``.

    Args:
        ctx: the run's context (memoises the deployed model's gradient check).
        model: the classifier as the cell runs it.
        target: the model the attack was crafted on (:func:`_craft`).
        judge: the deployed (defended) classifier.
        defense: the defense, or None.
        x: the batch's clean images.
        y: their labels.
        attack: the attack.
        res: its result on ``x``.
        idx: the batch's item indices in the cell.
        cfg: the cell's settings (seed, probes).
        adaptive_cell: the attack was crafted through the defense.
        defended: ``judge`` is right on the adversarial image.

    Shape:
        ``x`` ``(B, 3, H, W)``, ``y`` and ``defended`` ``(B,)``; each probe ``(B,)``.
    """
    stochastic = defense is not None and defense.stochastic
    return probe_batch(
        target,
        judge if stochastic else None,
        x,
        y,
        attack,
        res,
        idx[0],
        partial(image_generator, cfg.seed + 1, idx[0]),
        deployed=None if adaptive_cell else judge,
        deployed_differentiable=defense is None or defense.differentiable,
        probes=cfg.probes,
        fooled=~defended,
        memo=partial(
            ctx.memo,
            ("deployed-grad-zero", id(model), id(defense), cfg.seed, tuple(idx)),
        ),
    )


def _attack(
    attack: Attack,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: DefendConfig,
    first: int,
) -> AttackResult:
    return attack(model, x, y, generator=image_generator(cfg.seed, first))


def summarise_rows(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Defended accuracy (destruction rate; over every fresh draw for a random defense, and
    from a single draw), bare accuracy and perturbation sizes."""
    if not rows:
        return {}
    draws = [r["draws_correct"] for r in rows if "draws_correct" in r]
    return {
        "images": float(len(rows)),
        "defended_accuracy": statistics.fmean(r["defended_correct"] for r in rows),
        "defended_accuracy_all_draws": statistics.fmean(draws) if draws else None,
        "undefended_accuracy": statistics.fmean(r["adv_correct"] for r in rows),
        "failed": float(sum(r.get("failed", 0.0) for r in rows)),
        "l2_mean": statistics.fmean(r["l2"] for r in rows),
        "l2_median": statistics.median(r["l2"] for r in rows),
        "linf_max": max(r["linf"] for r in rows),
    }


def l2_curve(rows: list[dict[str, Any]], bins: int = 5) -> list[tuple[float, float]]:
    """Defense success rate against perturbation L2 (equal-count bins of the rows).

    Returns ``(mean L2 of the bin, fraction defended)`` pairs in increasing L2 (the first
    paper's curves for attacks whose per-image L2 varies, such as DeepFool).
    """
    ordered = sorted(rows, key=lambda r: r["l2"])
    n = len(ordered)
    out = []
    for b in range(min(bins, n)):
        part = ordered[b * n // min(bins, n) : (b + 1) * n // min(bins, n)]
        if part:
            out.append(
                (
                    statistics.fmean(r["l2"] for r in part),
                    statistics.fmean(r["defended_correct"] for r in part),
                )
            )
    return out


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """The SR-defense paper's layout: per mode, one row per defense, one column per attack
    (accuracy under the defense; for a random defense over every fresh draw, the single-draw
    figure beside it), the gradient-masking flags of every cell, and the
    success-rate-vs-L2 curves."""
    modes = [m for m in MODES if any(c.config["mode"] == m for c in cells)]
    labels = list(dict.fromkeys(c.info["label"] for c in cells))
    defenses = list(dict.fromkeys(c.info["defense"] for c in cells))
    by = {(c.config["mode"], c.info["defense"], c.info["label"]): c for c in cells}
    flags = _flags(cells)
    doc: dict[str, Any] = {"experiment": NAME, "tables": {}, "curves": {}, "flags": []}
    for mode in modes:
        rows = []
        for spec in defenses:
            row: dict[str, Any] = {"defense": spec}
            for label in labels:
                cell = by.get((mode, spec, label))
                s = summarise_rows(cell.rows) if cell else {}
                row[label] = s.get("defended_accuracy")
                row[f"{label}:all_draws"] = s.get("defended_accuracy_all_draws")
                row[f"{label}:flags"] = (
                    [f["flag"] for f in flags.get(cell.cell_id, [])] if cell else []
                )
                if label != "clean":
                    row[f"{label}:l2_median"] = s.get("l2_median")
            rows.append(row)
        doc["tables"][mode] = {"columns": labels, "rows": rows}
        doc["curves"][mode] = _curves(by, mode, defenses, labels)
    for c in cells:
        for f in flags.get(c.cell_id, []):
            doc["flags"].append(
                {
                    "mode": c.config["mode"],
                    "defense": c.info["defense"],
                    "attack": c.info["label"],
                    **f,
                }
            )
    doc["worst_case"] = _worst_case(cells, defenses)
    doc["draws"] = next((c.identity.get("draws") for c in cells if c.identity.get("draws")), None)
    first = cells[0] if cells else None
    doc["images"] = first.expected if first else 0
    doc["clean_accuracy_bare"] = first.info.get("clean_accuracy_bare") if first else None
    doc["model"] = first.shown["model"] if first else None
    doc["data"] = first.shown["data"] if first else None
    doc["cells"] = [
        {
            "cell_id": c.cell_id,
            "expected": c.expected,
            "stored": c.stored,
            "computed": c.computed,
            "probes": c.config.get("probes", "sample"),
            "probe_time_share": probe_time_share(c.rows),
        }
        for c in cells
    ]
    doc["probes_off"] = sorted(
        {c.info["defense"] for c in cells if c.config.get("probes") == "off"}
    )
    return doc


def _worst_case(cells: list[CellRun], defenses: list[str]) -> dict[str, dict[str, Any]]:
    """Per defense: the share of images that every attack of the table, in every mode,
    failed on (a random defense's image counts only when right in all its draws)."""
    out: dict[str, dict[str, Any]] = {}
    for spec in defenses:
        attacked = [c for c in cells if c.info["defense"] == spec and c.info["label"] != "clean"]
        if not attacked:
            continue
        survive: dict[str, bool] = {}
        for c in attacked:
            for r in c.rows:
                ok = r.get("draws_correct", r["defended_correct"]) == 1.0
                survive[r["key"]] = survive.get(r["key"], True) and ok
        out[spec] = {
            "accuracy": sum(survive.values()) / max(len(survive), 1),
            "images": len(survive),
            "attacks": sorted({f"{c.info['label']} ({c.config['mode']})" for c in attacked}),
        }
    return out


def _flags(cells: list[CellRun]) -> dict[str, list[dict[str, str]]]:
    """Every cell's gradient-masking flags (:mod:`advsr.attacks.probes`)."""
    from advsr.attacks.probes import cell_flags, cross_cell_flags, members_of

    out: dict[str, list[dict[str, str]]] = {}
    attacked = [c for c in cells if c.info["label"] != "clean"]
    for c in attacked:
        attack = c.identity.get("attack") or {}
        out[c.cell_id] = cell_flags(
            c.rows,
            members=members_of(attack),
            stochastic_eval=c.identity.get("draws") is not None,
            eot=c.identity.get("eot"),
            adaptive=c.config["mode"] == "adaptive",
        )
    views = []
    for c in attacked:
        attack = c.identity.get("attack") or {}
        settings = json.dumps(attack.get("settings"), sort_keys=True)
        views.append(
            {
                "id": c.cell_id,
                "group": (c.info["defense"], c.config["mode"], attack.get("name"), settings),
                "eps": attack.get("eps"),
                "mode": c.config["mode"],
                "label": c.info["label"],
                "pair": (c.info["defense"], c.info["label"]),
                "rows": [{"key": r["key"], "correct": r["defended_correct"]} for r in c.rows],
            }
        )
    for cid, extra in cross_cell_flags(views).items():
        out.setdefault(cid, []).extend(extra)
    return out


def _curves(
    by: dict[tuple[str, str, str], CellRun], mode: str, defenses: list[str], labels: list[str]
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for attack in ("fgsm", "ifgsm", "bim", "deepfool"):
        chosen = [lab for lab in labels if lab.partition("@")[0] == attack]
        if not chosen:
            continue
        curves[attack] = {}
        for spec in defenses:
            cells = [by[(mode, spec, lab)] for lab in chosen if (mode, spec, lab) in by]
            if attack == "deepfool":
                pts = l2_curve(cells[0].rows) if cells else []
            else:
                pts = []
                for c in cells:
                    s = summarise_rows(c.rows)
                    pts.append((float(s["l2_mean"] or 0.0), float(s["defended_accuracy"] or 0.0)))
            curves[attack][spec] = sorted(pts)
    return curves


def _cell_text(row: dict[str, Any], col: str) -> str:
    from advsr.attacks.probes import FLAG_MARK

    value = row.get(col)
    text = fmt(None if value is None else 100 * value, 1)
    draws = row.get(f"{col}:all_draws")
    if draws is not None:
        text = f"{fmt(100 * draws, 1)} (1 draw {text})"
    return text + (FLAG_MARK if row.get(f"{col}:flags") else "")


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """Top-1 accuracy (%) per mode: defenses x attacks; flagged cells marked, their flags
    and evidence under the table."""
    from advsr.attacks.probes import FLAG_MARK

    out = []
    for mode, t in doc["tables"].items():
        body = [[r["defense"], *(_cell_text(r, c) for c in t["columns"])] for r in t["rows"]]
        title = f"top-1 accuracy (%), {mode}, {doc['images']} images"
        notes = []
        if doc.get("draws"):
            notes.append(
                f"random defenses: right in all {doc['draws']} fresh draws (the single-draw "
                "figure in brackets)"
            )
        if doc.get("probes_off"):
            notes.append(f"probes off: no flags ({', '.join(doc['probes_off'])})")
        notes += [
            f"{FLAG_MARK} {f['defense']} / {f['attack']}: {f['flag']} ({f['evidence']})"
            for f in doc.get("flags", [])
            if f["mode"] == mode
        ]
        out.append(ReportTable(title, ["defense", *t["columns"]], body, notes))
    worst = doc.get("worst_case") or {}
    if worst:
        body = [
            [spec, fmt(100 * w["accuracy"], 1), str(w["images"]), str(len(w["attacks"]))]
            for spec, w in worst.items()
        ]
        out.append(
            ReportTable(
                "per-image worst case: images every attack in every mode failed on (%)",
                ["defense", "accuracy", "images", "attack x mode cells"],
                body,
            )
        )
    return out


def report(
    doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None = None
) -> ReportParts:
    """Accuracy tables per mode and the L2 curves."""
    plots = [
        Plot(
            f"{attack}, {mode}",
            "perturbation L2",
            "defense success rate",
            [(spec, pts) for spec, pts in per_spec.items()],
        )
        for mode, curves in doc["curves"].items()
        for attack, per_spec in curves.items()
    ]
    bare = doc.get("clean_accuracy_bare")
    intro = (
        f"{doc.get('model')} on {doc.get('data')}: {doc['images']} correctly classified images "
        f"(bare clean accuracy {fmt(None if bare is None else 100 * bare, 1)}% on the images "
        "scanned). Non-adaptive: attacks crafted on the bare classifier. Adaptive: crafted on "
        "classifier o defense with BPDA (non-differentiable defenses) and EOT (stochastic ones)."
    )
    return ReportParts("advsr defend", intro, tables(doc), plots)


DEFEND = register_experiment(
    Experiment(
        name=NAME,
        config=DefendConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        report=report,
        description="accuracy of a defended classifier under attack, non-adaptive and adaptive",
        version=3,
        flags=_flags,
    )
)
