"""The engine every experiment runs on: the cell contract, planning and the driver, the
SQLite result store, backends (local, Ray), the shared context, specs and tables.

* :mod:`advsr.engine.cell` - the contract (:class:`Experiment`, :class:`Plan`, rows,
  artefacts, identities) and :data:`EXPERIMENTS`;
* :mod:`advsr.engine.plan` - every cell validated and planned before any work starts;
* :mod:`advsr.engine.driver` - runs planned cells, the only writer of the store;
* :mod:`advsr.engine.backend` - where cells run (this process or Ray tasks);
* :mod:`advsr.engine.store` - the store (it only stores);
* :mod:`advsr.engine.tables` - pivots and labels over stored rows;
* :mod:`advsr.engine.context`, :mod:`advsr.engine.spec`, :mod:`advsr.engine.run`,
  :mod:`advsr.engine.listing`, :mod:`advsr.engine.inputs`, :mod:`advsr.engine.attack_cells`.

The experiment types themselves live in :mod:`advsr.experiments`, one module each.
"""

from advsr.engine.cell import EXPERIMENTS, CellRun, Experiment, Plan, register_experiment
from advsr.engine.context import Context
from advsr.engine.driver import read_cells, run_cells, run_plans
from advsr.engine.plan import plan_cells
from advsr.engine.spec import ExperimentSpec, load_spec
from advsr.engine.store import ResultStore, default_store_path
from advsr.engine.tables import Table, store_table

__all__ = [
    "EXPERIMENTS",
    "CellRun",
    "Context",
    "Experiment",
    "ExperimentSpec",
    "Plan",
    "ResultStore",
    "Table",
    "default_store_path",
    "load_spec",
    "plan_cells",
    "read_cells",
    "register_experiment",
    "run_cells",
    "run_plans",
    "store_table",
]
