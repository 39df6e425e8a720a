"""Training runs as cells: ``train-sr``, ``train-classifier``, ``train-refsr``.

A training run is a cell whose artefact is a weight file: its identity is the training
config (the output path, resumption and device are result-neutral), its one row holds the
final losses, the validation curve and the weights' SHA-256, and the weights themselves are
stored with the cell. Running the same config again reads the row back and, when the output
file is missing or holds other weights, writes the stored weights there
(:func:`materialise`) instead of training again. A run interrupted half way resumes from
its checkpoint with ``resume`` (the trainers' own exact resumption).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from advsr.engine.cell import (
    Artifact,
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
from advsr.io import check_output_path
from advsr.report import ReportTable, fmt

__all__ = ["WEIGHTS_ARTIFACT", "materialise"]

WEIGHTS_ARTIFACT = "weights.safetensors"


def _cell(
    name: str,
    train: Callable[[Any], dict[str, Any]],
    check: Callable[[Any, Context], None],
) -> Callable[[Any, Context], Plan]:
    """The plan of a training cell: ``train(cfg) -> row metrics`` writes ``cfg.out``."""

    def plan(cfg: Any, ctx: Context) -> Plan:
        out = check_output_path(cfg.out, ".safetensors")
        check(cfg, ctx)

        def compute(skip: set[str]) -> Iterator[CellRow | Artifact]:
            import time

            t0 = time.perf_counter()
            metrics = train(cfg)
            data = out.read_bytes()
            metrics["weights_sha256"] = hashlib.sha256(data).hexdigest()
            yield Artifact(WEIGHTS_ARTIFACT, data, "application/safetensors")
            yield CellRow(0, "weights", out.name, metrics, time.perf_counter() - t0)

        return Plan(
            cfg,
            cell_identity(cfg, ctx, version=1, stochastic=True),
            [Item("weights", out.name)],
            compute,
            f"{name} {getattr(cfg, 'model', '')}",
        )

    return plan


def materialise(run: CellRun, store: ResultStore) -> bool:
    """Write the stored weights to the cell's ``out`` when that file is missing or holds
    other weights; returns whether it wrote."""
    out = Path(run.config["out"])
    sha = run.rows[0]["weights_sha256"] if run.rows else None
    if out.is_file() and hashlib.sha256(out.read_bytes()).hexdigest() == sha:
        return False
    stored = store.artifacts(run.cell_id).get(WEIGHTS_ARTIFACT)
    if stored is None:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(stored[1])
    return True


def _summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    runs = [{**c.brief(), "out": c.config["out"], **(c.rows[0] if c.rows else {})} for c in cells]
    return {"experiment": cells[0].experiment if cells else "", "runs": runs}


def _tables(doc: dict[str, Any]) -> list[ReportTable]:
    keys = [k for k in (doc["runs"][0] if doc["runs"] else {}) if _scalar(doc["runs"][0][k])]
    keys = [k for k in keys if k not in ("cell_id", "key", "image")]
    body = [[fmt(r.get(k), 4) for k in keys] for r in doc["runs"]]
    return [ReportTable(f"{doc['experiment']} runs", keys, body)]


def _scalar(v: Any) -> bool:
    return isinstance(v, int | float | str | bool) or v is None


# ------------------------------------------------------------------------------ train-sr


def _train_sr(cfg: Any) -> dict[str, Any]:
    from advsr.training.sr import train_sr

    res = train_sr(cfg)
    return {
        "steps": res.steps,
        "final_loss": res.final_loss,
        "val_psnr": [[s, v] for s, v in res.val_psnr],
        "bicubic_val_psnr": res.bicubic_val_psnr,
    }


def _check_sr(cfg: Any, ctx: Context) -> None:
    from advsr.errors import InputError
    from advsr.models.sr import SR_MODELS

    if not SR_MODELS.get(cfg.model).needs_weights:
        raise InputError(f"{cfg.model} has no parameters to train")
    ds = ctx.sr_dataset(cfg.data, cfg.scale, None)
    unknown = [n for n in cfg.holdout if n not in ds.names()]
    if unknown:
        raise InputError(f"held-out images not in {cfg.data}: {', '.join(unknown)}")


def _train_classifier(cfg: Any) -> dict[str, Any]:
    from advsr.training.classifier import train_classifier

    res = train_classifier(cfg)
    return {"val_accuracy": res.val_accuracy, "final_val_accuracy": res.val_accuracy[-1]}


def _check_classifier(cfg: Any, ctx: Context) -> None:
    from advsr.models.classifiers import CLASSIFIERS

    CLASSIFIERS.get(cfg.model)
    ctx.labelled(cfg.data, None, None)
    ctx.labelled(cfg.val, None, None)


def _train_refsr(cfg: Any) -> dict[str, Any]:
    from advsr.training.refsr import train_refsr

    res = train_refsr(cfg)
    return {
        "steps": res.steps,
        "clean_loss": res.clean_loss,
        "backdoor_loss": res.backdoor_loss,
        "poisoned": res.poisoned,
        "perceptual": res.perceptual,
    }


def _check_refsr(cfg: Any, ctx: Context) -> None:
    from advsr.backdoor.attacker import make_trigger
    from advsr.models.refsr import REFSR_MODELS

    REFSR_MODELS.get(cfg.model)
    make_trigger(cfg.trigger)


def _register() -> None:
    from advsr.training.classifier import TrainClassifierConfig
    from advsr.training.refsr import TrainRefSRConfig
    from advsr.training.sr import TrainSRConfig

    for name, config, train, check, help_ in (
        ("train-sr", TrainSRConfig, _train_sr, _check_sr, "L1 training of an SR zoo model"),
        ("train-classifier", TrainClassifierConfig, _train_classifier, _check_classifier,
         "cross-entropy training of a zoo classifier"),
        ("train-refsr", TrainRefSRConfig, _train_refsr, _check_refsr,
         "poisoned RefSR training (BadRefSR)"),
    ):  # fmt: skip
        register_experiment(
            Experiment(
                name=name,
                config=config,
                plan=_cell(name, train, check),
                summarise=_summarise,
                tables=_tables,
                description=f"{help_}; the artefact is the weight file",
            )
        )


_register()
