"""The ``attack-clf`` experiment: a classifier attack at one budget over a labelled dataset.

Rows per image: ``correct`` (clean prediction right), ``adv_correct`` (still right after the
attack), ``success`` (the attack changed a right prediction), ``failed`` (the attack could
not process the image: a solver error, never counted silently), ``l2``, ``linf`` and
``psnr``/``ssim`` of ``x_adv`` vs ``x``, and the attack's per-image diagnostics
(``iterations``, ``status``, ``gap``, perceptual ``s2``/``within_budget``). :func:`summarise`
turns them into clean accuracy, robust accuracy, fooling rate (successes among the
clean-correct images), failures and mean/median L2 and L-inf of the successful
perturbations.

Images are processed in fixed batches of ``batch_size`` (a resumed run recomputes the same
batches, so a random attack draws the same numbers); a batch's generator is seeded by
``seed`` and its first position.

Example:
    >>> from advsr.engine.store import ResultStore
    >>> res = attack_clf({"attack": "fgsm", "eps": 8 / 255, "limit": 16},
    ...                  ResultStore(":memory:"), progress=False)
    >>> s = summarise_rows(res.rows); s["images"], s["clean_accuracy"] > 0.9
    (16.0, True)
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch

from advsr.attacks.base import Attack
from advsr.attacks.budget import format_budget
from advsr.attacks.probes import probe_batch
from advsr.engine.attack_cells import (
    ClassifierCellConfig,
    attacked_batches,
    check_labels,
    check_targets,
    image_generator,
    items_of,
)
from advsr.engine.cell import (
    CellRow,
    CellRun,
    Experiment,
    Item,
    Plan,
    cell_identity,
    register_experiment,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.memory import MicroBatched
from advsr.metrics import psnr, ssim
from advsr.report import ReportTable, fmt

__all__ = ["AttackClfConfig", "attack_clf", "classifier_attack", "summarise_rows"]

NAME = "attack-clf"


class AttackClfConfig(ClassifierCellConfig):
    """Settings of one ``attack-clf`` cell (one attack at one budget); see
    :class:`~advsr.engine.attack_cells.ClassifierCellConfig`."""

    compile: bool = False
    """torch.compile the model for the attack (falls back to eager with a notice)."""


def classifier_attack(cfg: ClassifierCellConfig) -> Attack:
    """The cell's attack, refused when it is not a classifier attack."""
    attack = cfg.make_attack()
    if attack.entry.domain != "classifier":
        raise InputError(f"{attack.name} is an SR attack; use attack-sr")
    return attack


def _plan(cfg: AttackClfConfig, ctx: Context) -> Plan:
    attack = classifier_attack(cfg)
    device = ctx.device(cfg.device)
    model = ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed)
    data = ctx.labelled(cfg.data, cfg.pattern, cfg.per_class, model).subset(cfg.limit)
    check_labels(model, data, device)
    check_targets(model, attack)
    items = items_of(data.keys, data.names)

    def compute(skip: set[str]) -> Iterator[CellRow]:
        run = ctx.compiled(model) if cfg.compile else MicroBatched(model, cfg.model)
        yield from _rows(run, data, items, attack, cfg, skip, device)

    return Plan(
        cfg,
        cell_identity(
            cfg, ctx, version=ATTACK_CLF.version, attack=attack, extra=cfg.probe_identity()
        ),
        items,
        compute,
        f"{attack.label} on {cfg.model}",
        batch=cfg.batch_size,
    )


def _rows(
    model: torch.nn.Module,
    data: Any,
    items: list[Item],
    attack: Attack,
    cfg: AttackClfConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[CellRow]:
    for b in attacked_batches(model, data, items, attack, cfg, skip, device):
        x, y, res = b.x, b.y, b.result
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        adv_correct = res.predictions == y
        p = psnr(res.x_adv, x)
        s = ssim(res.x_adv, x) if min(x.shape[-2:]) >= 11 else None
        t1 = time.perf_counter()
        probes = probe_batch(
            model,
            None,
            x,
            y,
            attack,
            res,
            b.idx[0],
            partial(image_generator, cfg.seed + 1, b.idx[0]),
            probes=cfg.probes,
            fooled=res.success,
        )
        probe_seconds = (time.perf_counter() - t1) / len(b.idx)
        per = b.seconds_per_item()
        for j, (i, extra) in enumerate(zip(b.idx, res.per_image(), strict=True)):
            metrics = {
                **extra,
                **{k: float(v[j]) for k, v in probes.items()},
                "correct": float(correct[j]),
                "adv_correct": float(adv_correct[j]),
                "success": float(bool(correct[j]) and not bool(adv_correct[j])),
                "psnr": float(p[j]),
                "probe_seconds": probe_seconds,
            }
            if s is not None:
                metrics["ssim"] = float(s[j])
            yield CellRow(i, items[i].key, items[i].name, metrics, per)


def summarise_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Clean/robust accuracy, fooling rate, failures and perturbation sizes of one cell."""
    n = len(rows)
    if n == 0:
        return {}
    ok = [r for r in rows if r["correct"] == 1.0]
    fooled = [r for r in ok if r["success"] == 1.0]

    def stat(key: str, fn: Any) -> float | None:
        vals = [r[key] for r in fooled if isinstance(r.get(key), float)]
        return float(fn(vals)) if vals else None

    statuses = Counter(r["status"] for r in rows if "status" in r)
    return {
        "images": float(n),
        "clean_accuracy": len(ok) / n,
        "robust_accuracy": sum(r["adv_correct"] for r in rows) / n,
        "fooling_rate": len(fooled) / len(ok) if ok else None,
        "failed": float(sum(r.get("failed", 0.0) for r in rows)),
        "statuses": dict(statuses) if statuses else None,
        "l2_mean": stat("l2", statistics.fmean),
        "l2_median": stat("l2", statistics.median),
        "linf_mean": stat("linf", statistics.fmean),
        "linf_median": stat("linf", statistics.median),
        "psnr_mean": stat("psnr", statistics.fmean),
        "ssim_mean": stat("ssim", statistics.fmean),
    }


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """One result per cell: the attack, its budget, :func:`summarise_rows` and its
    gradient-masking flags (:mod:`advsr.attacks.probes`)."""
    from advsr.attacks.probes import (
        cell_flags,
        cross_cell_flags,
        members_of,
        probe_time_share,
    )

    results = []
    views = []
    for c in cells:
        cfg = c.shown
        attack = c.identity.get("attack", {})
        flags = cell_flags(c.rows, members=members_of(attack))
        results.append(
            {
                "attack": cfg["attack"],
                "eps": attack.get("eps"),
                "model": cfg["model"],
                "data": cfg["data"],
                "cell_id": c.cell_id,
                "expected": c.expected,
                "stored": c.stored,
                "computed": c.computed,
                **summarise_rows(c.rows),
                "probes": cfg.get("probes", "sample"),
                "probe_time_share": probe_time_share(c.rows),
                "flags": flags,
            }
        )
        settings = json.dumps(attack.get("settings"), sort_keys=True)
        views.append(
            {
                "id": c.cell_id,
                "group": (cfg["model"], cfg["data"], attack.get("name"), settings),
                "eps": attack.get("eps"),
                "mode": "",
                "label": cfg["attack"],
                "pair": c.cell_id,
                "rows": [{"key": r["key"], "correct": r["adv_correct"]} for r in c.rows],
            }
        )
    cross = cross_cell_flags(views)
    for r in results:
        r["flags"] = r["flags"] + cross.get(r["cell_id"], [])
    return {"experiment": NAME, "results": results}


COLUMNS = (
    "clean_accuracy",
    "robust_accuracy",
    "fooling_rate",
    "failed",
    "l2_median",
    "linf_median",
    "psnr_mean",
)


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """Attacks x (accuracies, fooling rate, failures, perturbation sizes)."""
    from advsr.attacks.base import ATTACKS
    from advsr.attacks.probes import FLAG_MARK

    pairs = list(dict.fromkeys((r["model"], r["data"]) for r in doc["results"]))
    one = len(pairs) == 1
    body = []
    for r in doc["results"]:
        name = r["attack"].partition("@")[0]
        norm = ATTACKS.get(name).norm if name in ATTACKS else "linf"
        where = [] if one else [f"{r['model']} / {r['data']}"]
        mark = FLAG_MARK if r.get("flags") else ""
        body.append(
            [
                *where,
                name + mark,
                format_budget(r["eps"], norm),
                *(fmt(r.get(c), 4) for c in COLUMNS),
            ]
        )
    title = f"attacks on {pairs[0][0]}, {pairs[0][1]}" if one else "classifier attacks"
    header = ["attack", "eps", *COLUMNS] if one else ["model / data", "attack", "eps", *COLUMNS]
    notes = [
        f"{FLAG_MARK} {r['attack']}: {f['flag']} ({f['evidence']})"
        for r in doc["results"]
        for f in r.get("flags", [])
    ]
    off = [r["attack"] for r in doc["results"] if r.get("probes") == "off"]
    if off:
        notes.append(f"probes off: no flags ({', '.join(off)})")
    return [ReportTable(title, header, body, notes)]


ATTACK_CLF = register_experiment(
    Experiment(
        name=NAME,
        config=AttackClfConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        description="a classifier attack at one budget: accuracies, fooling rate, sizes",
        version=2,
        flags=lambda cells: {r["cell_id"]: r["flags"] for r in summarise(cells)["results"]},
    )
)


def attack_clf(
    cfg: AttackClfConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellRun:
    """Run one cell with resume; ``summarise_rows(result.rows)`` gives the table entries.

    Raises:
        AdvsrError: unknown attack (with suggestions), model or dataset; bad budget.
    """
    from advsr.engine.driver import run_one

    return run_one(NAME, cfg, store, progress=progress)
