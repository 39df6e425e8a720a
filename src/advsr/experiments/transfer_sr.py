"""The ``transfer`` experiment: attacks crafted on one SR model, measured on others.

One cell per source model: each image is attacked on the source (the basic attack), then
every target model's SR PSNR ``f_t(X_adv)`` vs ``f_t(X0)`` is measured (row metrics
``sr_psnr@<target>``). :func:`transfer_matrix` turns the cells into the source x target
matrix of Choi et al.'s Figure 4.

Example:
    >>> from advsr.engine.store import ResultStore
    >>> res = transfer_sr({"source": "bicubic", "targets": ["bicubic"], "steps": 2,
    ...                    "hr_crop": 32}, ResultStore(":memory:"), progress=False)
    >>> sorted(res.mean)
    ['lr_psnr', 'sr_psnr@bicubic']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import torch
from pydantic import AliasChoices, Field

from advsr.attacks.budget import BUDGET, format_budget
from advsr.attacks.sr import DEFAULT_REFERENCE
from advsr.engine.attack_cells import configured_attack, image_generator, items_of
from advsr.engine.cell import (
    ATTACK,
    MAX_STEPS,
    SEEDED,
    CellConfig,
    CellRun,
    Experiment,
    Item,
    Plan,
    cell_identity,
    register_experiment,
    timed,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.metrics import psnr
from advsr.modes import eval_mode
from advsr.report import ReportTable, fmt
from advsr.settings import DATA, MODEL, WEIGHTS

__all__ = ["TransferSRConfig", "transfer_matrix", "transfer_sr"]

NAME = "transfer"


class TransferSRConfig(CellConfig):
    """One source model against a list of targets (see the field docstrings)."""

    source: Annotated[str, MODEL]
    """The model attacks are crafted on (zoo name or model file)."""
    targets: Annotated[list[str], MODEL] = Field(min_length=1)
    """The models they are measured on."""
    weights: Annotated[dict[str, str], WEIGHTS] = Field(default_factory=dict)
    """Weight files by model name."""
    data: Annotated[str, DATA] = "samples"
    """Dataset name or path."""
    scale: int = Field(4, ge=1)
    """SR factor."""
    hr_crop: int | None = Field(None, ge=1)
    """Centre-crop HR images (quick runs)."""
    eps: Annotated[float, ATTACK, BUDGET] = Field(
        8 / 255, ge=0.0, le=1.0, validation_alias=AliasChoices("eps", "alpha")
    )
    """Total L-inf budget of the basic attack (the paper's alpha)."""
    steps: Annotated[int, ATTACK] = Field(50, ge=1, le=MAX_STEPS)
    """Iterations T."""
    reference: Annotated[str, ATTACK] = DEFAULT_REFERENCE
    """clean-8bit, ground-truth or clean (with --random-start)."""
    random_start: Annotated[bool, ATTACK] = False
    """Start at a random point of the budget."""
    seed: Annotated[int, SEEDED] = 0
    """Seed of the random start."""
    random_weights: bool = False
    """Run a zoo model that has no weights untrained, initialised from the seed (refused
    without it); every table row of such a cell says "random weights"."""


def _plan(cfg: TransferSRConfig, ctx: Context) -> Plan:
    names = list(dict.fromkeys([cfg.source, *cfg.targets]))
    unknown = set(cfg.weights) - set(names)
    if unknown:
        raise InputError(f"weights given for models not in the run: {', '.join(sorted(unknown))}")
    attack = configured_attack(
        "basic",
        cfg.eps,
        explicit=cfg.model_fields_set,
        steps=cfg.steps,
        reference=cfg.reference,
        random_start=cfg.random_start,
    )
    dataset = ctx.sr_dataset(cfg.data, cfg.scale, cfg.hr_crop)
    device = ctx.device(cfg.device)
    for n in names:
        ctx.sr_model(n, cfg.scale, cfg.weights.get(n), device, cfg.init_seed)
    items = items_of(dataset.keys(), dataset.names())

    def compute(skip: set[str]) -> Iterator[Any]:
        models = {
            n: ctx.sr_model(n, cfg.scale, cfg.weights.get(n), device, cfg.init_seed) for n in names
        }
        for_rows = _rows(models, dataset, items, attack, cfg, skip, device)
        yield from timed(for_rows)

    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=TRANSFER.version, attack=attack),
        items,
        compute,
        f"transfer from {cfg.source}",
        batch=1,
    )


def _rows(
    models: Mapping[str, torch.nn.Module],
    dataset: Any,
    items: list[Item],
    attack: Any,
    cfg: TransferSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[tuple[int, Item, dict[str, Any]]]:
    for i, item in enumerate(items):
        if item.key in skip:
            continue
        pair = dataset[i]
        lr, hr = pair.lr.to(device), pair.hr.to(device)
        res = attack(models[cfg.source], lr, hr, generator=image_generator(cfg.seed, i))
        metrics: dict[str, Any] = {"lr_psnr": float(psnr(res.x_adv, lr)[0])}
        for t in cfg.targets:
            tm = models[t]
            with eval_mode(tm), torch.no_grad():
                metrics[f"sr_psnr@{t}"] = float(psnr(tm(res.x_adv), tm(lr))[0])
        yield i, item, metrics


def transfer_matrix(cells: list[CellRun], targets: list[str]) -> list[list[float | None]]:
    """``matrix[i][j]`` = mean SR PSNR on target j of attacks crafted on source i."""
    return [[c.mean.get(f"sr_psnr@{t}") for t in targets] for c in cells]


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """The source x target matrix (targets: the union over cells, in order)."""
    targets = list(dict.fromkeys(t for c in cells for t in c.config["targets"]))
    eps = sorted({format_budget(c.config["eps"]) for c in cells})
    return {
        "experiment": NAME,
        "alpha": ", ".join(eps),
        "sources": [c.shown["source"] for c in cells],
        "targets": targets,
        "matrix": transfer_matrix(cells, targets),
        "runs": {c.shown["source"]: c.as_dict() for c in cells},
    }


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """The transferability matrix."""
    title = (
        f"Transferability: SR PSNR (dB) on the target, alpha {doc['alpha']} "
        "(rows: attacked model, columns: evaluated model)"
    )
    body = [
        [src.removeprefix("demo-"), *(fmt(v, 2) for v in row)]
        for src, row in zip(doc["sources"], doc["matrix"], strict=True)
    ]
    header = ["source \\ target", *(t.removeprefix("demo-") for t in doc["targets"])]
    return [ReportTable(title, header, body)]


TRANSFER = register_experiment(
    Experiment(
        name=NAME,
        config=TransferSRConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        description="transferability: basic attacks crafted on a source, SR PSNR on targets",
    )
)


def transfer_sr(
    cfg: TransferSRConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellRun:
    """Run one source's cell (rows hold ``lr_psnr`` and ``sr_psnr@<target>``)."""
    from advsr.engine.driver import run_one

    return run_one(NAME, cfg, store, progress=progress)
