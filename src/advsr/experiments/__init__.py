"""Experiments: validated specs, the cell runner and the SQLite result store."""

from advsr.experiments.eval_sr import EvalSRConfig, eval_sr
from advsr.experiments.run import EXPERIMENTS, ExperimentRun, run_spec
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import ExperimentSpec, load_spec
from advsr.experiments.store import ResultStore, Table, default_store_path

__all__ = [
    "EXPERIMENTS",
    "CellResult",
    "CellRow",
    "EvalSRConfig",
    "ExperimentRun",
    "ExperimentSpec",
    "ResultStore",
    "Table",
    "default_store_path",
    "eval_sr",
    "load_spec",
    "run_cell",
    "run_spec",
]
