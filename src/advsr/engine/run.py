"""``advsr run``: every cell of a spec file, any mix of experiments, against the store.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s.toml").write_text('experiment = "eval-sr"\\n[grid]\\nscale = [2, 4]\\n'
    ...                               '[settings]\\nhr_crop = 32\\n')
    >>> doc, tables = run_spec_file(d / "s.toml", d / "store.sqlite", progress=False)
    >>> doc["computed"], [r["config"]["scale"] for r in doc["runs"]]
    (16, [2, 4])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advsr.engine.backend import Backend
from advsr.engine.cell import EXPERIMENTS
from advsr.engine.context import Context
from advsr.engine.driver import run_plans
from advsr.engine.plan import plan_cells
from advsr.engine.spec import load_spec
from advsr.engine.store import ResultStore, default_store_path, store_session
from advsr.report import ReportTable

__all__ = ["run_spec_file"]


def run_spec_file(
    path: str | Path,
    store: str | Path | None,
    *,
    progress: bool | None = None,
    backend: Backend | None = None,
) -> tuple[dict[str, Any], dict[str, list[ReportTable]]]:
    """Run a spec (every cell validated first) and summarise each experiment it names.

    Returns:
        the JSON document (``runs``: one entry per cell with its config and row counts;
        ``summaries``: per experiment; ``computed`` / ``from_store`` totals) and the tables
        of each experiment.

    Raises:
        AdvsrError: a bad spec or an invalid cell (nothing is computed then).
    """
    spec = load_spec(path)
    target = store or default_store_path()
    ResultStore.check_path(target)
    plans = plan_cells(spec.cells(), Context())  # every cell validated before the store
    with store_session(target) as st:
        runs = run_plans(plans, st, progress=progress, backend=backend)
        summaries = {}
        tables: dict[str, list[ReportTable]] = {}
        for name in spec.experiments:
            exp = EXPERIMENTS.get(name)
            summaries[name] = exp.summarise([r for r in runs if r.experiment == name], st)
            tables[name] = exp.tables(summaries[name])
    doc = {
        "spec": str(path),
        "computed": sum(r.computed for r in runs),
        "from_store": sum(r.from_store for r in runs),
        "runs": [
            {**r.brief(), "experiment": r.experiment, "config": r.config, "mean": r.mean}
            for r in runs
        ],
        "summaries": summaries,
    }
    return doc, tables
