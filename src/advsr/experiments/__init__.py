"""Experiments: validated specs, the cell runner and the SQLite result store."""

from advsr.experiments.eval_sr import EvalSRConfig, EvalSRResult, eval_sr
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.store import ResultStore, Table, default_store_path

__all__ = [
    "CellResult",
    "CellRow",
    "EvalSRConfig",
    "EvalSRResult",
    "ResultStore",
    "Table",
    "default_store_path",
    "eval_sr",
    "run_cell",
]
