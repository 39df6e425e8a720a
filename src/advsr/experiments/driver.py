"""The driver: plans every cell first, then runs them; the only writer of the result store.

:func:`plan_cells` validates and plans every cell of a run (any mix of registered
experiments) before any work starts, so a spec whose last cell is invalid stores nothing.
:func:`run_plans` then runs the cells in order: a finished cell is read back; otherwise the
cell's pure row generator gets the keys already stored and yields the other rows (and
artefacts), each written and committed the moment it arrives. A row that arrives twice (a
recomputed batch, a retried task) is stored once. A cell is marked finished when every
expected key is stored.

Example:
    >>> from advsr.experiments.store import ResultStore, cell_id_of
    >>> runs = run_cells([("eval-sr", {"data": "samples", "scale": 2, "hr_crop": 32})],
    ...                  ResultStore(":memory:"), progress=False)
    >>> runs[0].computed, runs[0].expected, sorted(runs[0].mean)
    (8, 8, ['psnr', 'ssim'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from advsr.experiments.cell import EXPERIMENTS, Artifact, CellRow, CellRun, Experiment, Plan
from advsr.experiments.context import Context
from advsr.experiments.store import ResultStore, cell_id_of
from advsr.progress import progress_bar
from advsr.settings import validate

__all__ = ["plan_cells", "read_cells", "run_cells", "run_one", "run_plans"]

MAX_CELLS = 100_000
"""The most cells one run may have (a grid beyond this is almost certainly a mistake)."""


def plan_cells(
    cells: Iterable[tuple[str, Mapping[str, Any]]], ctx: Context
) -> list[tuple[Experiment, Plan]]:
    """Validate and plan every ``(experiment, settings)`` cell; nothing is computed.

    Raises:
        AdvsrError: an unknown experiment or an invalid cell (the first one found).
    """
    out = []
    for name, settings in cells:
        exp = EXPERIMENTS.get(name)
        cfg = validate(exp.config, dict(settings), f"{exp.name} setting")
        out.append((exp, exp.plan(cfg, ctx)))
    return out


def run_plans(
    plans: Sequence[tuple[Experiment, Plan]],
    store: ResultStore,
    *,
    progress: bool | None = None,
) -> list[CellRun]:
    """Run planned cells against the store (see the module docstring)."""
    runs = []
    for exp, plan in plans:
        keys = [it.key for it in plan.items]

        def begin(exp: Experiment = exp, plan: Plan = plan, keys: list[str] = keys) -> str:
            return store.begin_cell(
                exp.name,
                plan.identity,
                keys,
                config=plan.config.model_dump(),
                info={"title": plan.description, **plan.info},
            )

        cid = cell_id_of(exp.name, plan.identity)
        known = store.has_cell(cid)  # a new cell is registered with its first output only
        done = set(keys) if known and store.is_finished(cid) else store.done_keys(cid)
        if known:
            begin()  # checks that the expected items did not change
        todo = [k for k in keys if k not in done]
        computed = 0
        if todo:
            with progress_bar(len(todo), plan.description or exp.name, progress) as bar:
                for out in plan.compute(done):
                    if not known:
                        known = bool(begin())
                    if isinstance(out, Artifact):
                        store.put_artifact(cid, out.name, out.data, out.media_type)
                        continue
                    row: CellRow = out
                    if row.key in done:
                        continue
                    if store.add_row(cid, row.idx, row.key, row.name, row.metrics, row.seconds):
                        computed += 1
                        done.add(row.key)
                        bar.advance()
        if not known:
            begin()
        store.finish_cell(cid)
        runs.append(_read(store, cid, computed, plan.config.model_dump()))
    return runs


def _read(
    store: ResultStore, cid: str, computed: int, config: dict[str, Any] | None = None
) -> CellRun:
    """A cell from the store; ``config`` is the one asked for now (else the stored one: the
    first run's, whose result-neutral settings may differ)."""
    c = store.cell(cid)
    rows = store.cell_rows(cid)
    return CellRun(
        experiment=c["experiment"],
        cell_id=cid,
        config=config if config is not None else c["config"],
        identity=c["identity"],
        info=c["info"],
        rows=rows,
        expected=c["expected"],
        computed=computed,
        from_store=len(rows) - computed,
        artifacts=tuple(store.artifacts(cid)),
    )


def run_cells(
    cells: Iterable[tuple[str, Mapping[str, Any]]],
    store: ResultStore,
    *,
    progress: bool | None = None,
    ctx: Context | None = None,
) -> list[CellRun]:
    """Plan every cell, then run them all (the one entry point of every command).

    Raises:
        AdvsrError: an invalid cell, before any work.
    """
    ctx = ctx or Context()
    return run_plans(plan_cells(cells, ctx), store, progress=progress)


def run_one(
    experiment: str, cfg: Any, store: ResultStore, *, progress: bool | None = None
) -> CellRun:
    """Run one cell of ``experiment`` from its config object or a settings dict."""
    settings = cfg.model_dump() if hasattr(cfg, "model_dump") else dict(cfg)
    return run_cells([(experiment, settings)], store, progress=progress)[0]


def read_cells(
    store: ResultStore,
    experiment: str,
    where: Mapping[str, Any] | None = None,
) -> list[CellRun]:
    """The stored cells of one experiment whose config matches ``where`` (no computing)."""
    EXPERIMENTS.get(experiment)
    out = []
    for c in store.cells(experiment):
        if where and any(c["config"].get(k) != v for k, v in where.items()):
            continue
        out.append(_read(store, c["cell_id"], 0))
    return out
