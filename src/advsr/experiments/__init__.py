"""Experiments: registered cell types, specs, the driver and the SQLite result store.

Importing this package registers every experiment in :data:`EXPERIMENTS`: ``eval-sr``,
``attack-sr``, ``transfer``, ``attack-clf``, ``defend``, ``perceptual``, ``explain``,
``manifold`` and ``backdoor`` (see :mod:`advsr.experiments.cell` for the contract and
:mod:`advsr.experiments.driver` for how cells run).
"""

from advsr.experiments import (
    attack_clf,
    attack_sr,
    backdoor,
    defend,
    explain,
    manifold,
    perceptual_cmp,
    training,
    transfer_sr,
)
from advsr.experiments.cell import EXPERIMENTS, CellRun, Experiment, Plan
from advsr.experiments.context import Context
from advsr.experiments.driver import plan_cells, read_cells, run_cells, run_plans
from advsr.experiments.eval_sr import EvalSRConfig, eval_sr
from advsr.experiments.spec import ExperimentSpec, load_spec
from advsr.experiments.store import ResultStore, Table, default_store_path

__all__ = [
    "EXPERIMENTS",
    "CellRun",
    "Context",
    "EvalSRConfig",
    "Experiment",
    "ExperimentSpec",
    "Plan",
    "ResultStore",
    "Table",
    "attack_clf",
    "attack_sr",
    "backdoor",
    "default_store_path",
    "defend",
    "eval_sr",
    "explain",
    "load_spec",
    "manifold",
    "perceptual_cmp",
    "plan_cells",
    "read_cells",
    "run_cells",
    "run_plans",
    "training",
    "transfer_sr",
]
