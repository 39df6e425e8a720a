"""Registered experiments and the driver that runs a spec's cells against the store.

Example:
    >>> from advsr.experiments.store import ResultStore
    >>> spec = ExperimentSpec(experiment="eval-sr", grid={"scale": [2, 4]},
    ...                       settings={"data": "samples", "hr_crop": 48})
    >>> runs = run_spec(spec, ResultStore(":memory:"), progress=False)
    >>> [r.config["scale"] for r in runs], all(len(r.rows) == 8 for r in runs)
    ([2, 4], True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from advsr.experiments.attack_sr import AttackSRConfig, attack_sr
from advsr.experiments.eval_sr import EvalSRConfig, eval_sr
from advsr.experiments.runner import CellResult
from advsr.experiments.spec import ExperimentSpec, validate
from advsr.experiments.store import ResultStore
from advsr.registry import Registry

__all__ = ["EXPERIMENTS", "ExperimentEntry", "ExperimentRun", "run_spec"]


@dataclass(frozen=True)
class ExperimentEntry:
    """A registered experiment: its config class and its resumable run function."""

    config: type[BaseModel]
    run: Callable[[Any, ResultStore, bool | None], CellResult]
    description: str


@dataclass(frozen=True)
class ExperimentRun:
    """One cell of a spec after running: its validated config and result."""

    experiment: str
    config: dict[str, Any]
    cell_id: str
    rows: list[dict[str, Any]]
    mean: dict[str, float]
    computed: int
    skipped: int


EXPERIMENTS: Registry[ExperimentEntry] = Registry("experiment")
EXPERIMENTS.register(
    "eval-sr",
    ExperimentEntry(
        config=EvalSRConfig,
        run=lambda cfg, store, progress: eval_sr(cfg, store, progress=progress),
        description="PSNR/SSIM of an SR model on a dataset",
    ),
)
EXPERIMENTS.register(
    "attack-sr",
    ExperimentEntry(
        config=AttackSRConfig,
        run=lambda cfg, store, progress: attack_sr(cfg, store, progress=progress),
        description="basic / partial attacks on an SR model (Choi et al. 2019)",
    ),
)


def run_spec(
    spec: ExperimentSpec, store: ResultStore, *, progress: bool | None = None
) -> list[ExperimentRun]:
    """Validate every cell of ``spec`` first, then run them in order (finished ones are read back).

    Raises:
        AdvsrError: an unknown experiment or an invalid cell (before any work is done).
    """
    entry = EXPERIMENTS.get(spec.experiment)
    configs = [validate(entry.config, cell) for cell in spec.cells()]
    runs = []
    for cfg in configs:
        res = entry.run(cfg, store, progress)
        runs.append(
            ExperimentRun(
                experiment=spec.experiment,
                config=cfg.model_dump(),
                cell_id=res.cell_id,
                rows=res.rows,
                mean=res.mean,
                computed=res.computed,
                skipped=res.skipped,
            )
        )
    return runs
