"""The driver: plans every cell first, then runs them; the only writer of the result store.

:func:`~advsr.engine.plan.plan_cells` validates and plans every cell of a run (any mix of
registered experiments) before any work starts, so a spec whose last cell is invalid stores
nothing. :func:`run_plans` then runs the cells in order: a finished cell is read back; otherwise the
cell's pure row generator gets the keys already stored and yields the other rows (and
artefacts), each written and committed the moment it arrives. A row that arrives twice (a
recomputed batch, a retried task) is stored once. A cell is marked finished when every
expected key is stored.

Example:
    >>> from advsr.engine.store import ResultStore, cell_id_of
    >>> runs = run_cells([("eval-sr", {"data": "samples", "scale": 2, "hr_crop": 32})],
    ...                  ResultStore(":memory:"), progress=False)
    >>> runs[0].computed, runs[0].expected, sorted(runs[0].mean)
    (8, 8, ['psnr', 'ssim'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from advsr.engine.backend import Backend, connect, run_unit, units_of, unwrap
from advsr.engine.cell import EXPERIMENTS, Artifact, CellRow, CellRun, Experiment, Plan
from advsr.engine.context import Context
from advsr.engine.plan import plan_cells
from advsr.engine.store import ResultStore, cell_id_of
from advsr.progress import progress_bar

__all__ = ["read_cells", "run_cells", "run_one", "run_plans"]


class _Cell:
    """One cell being run: registers it with its first output, writes its rows (each once)
    and artefacts, and finishes it. The only code that writes cells to the store."""

    def __init__(self, exp: Experiment, plan: Plan, store: ResultStore) -> None:
        self.exp, self.plan, self.store = exp, plan, store
        self.keys = [it.key for it in plan.items]
        self.cid = cell_id_of(exp.name, plan.identity)
        self.known = store.has_cell(self.cid)  # a new cell is registered with its first output
        if self.known and store.is_finished(self.cid):
            self.done = set(self.keys)
        else:
            self.done = store.done_keys(self.cid)
        if self.known:
            self._begin()  # checks that the expected items did not change
        self.computed = 0

    @property
    def todo(self) -> set[str]:
        """Keys not stored yet."""
        return {k for k in self.keys if k not in self.done}

    def _begin(self) -> None:
        self.store.begin_cell(
            self.exp.name,
            self.plan.identity,
            self.keys,
            config=self.plan.config.model_dump(),
            info={"title": self.plan.description, **self.plan.info},
        )
        self.known = True

    def write(self, out: CellRow | Artifact) -> bool:
        """Store one output; True when it is a new row."""
        if not self.known:
            self._begin()
        if isinstance(out, Artifact):
            self.store.put_artifact(self.cid, out.name, out.data, out.media_type)
            return False
        if out.key in self.done:
            return False
        if self.store.add_row(self.cid, out.idx, out.key, out.name, out.metrics, out.seconds):
            self.computed += 1
            self.done.add(out.key)
            return True
        return False

    def missing_figures(self) -> list[str]:
        """Keys of the items whose figures were asked for and are not stored."""
        if not self.plan.figures:
            return []
        have = {name.rpartition("/")[0] for name in self.store.artifact_names(self.cid)}
        return [k for k in self.plan.figures if k not in have]

    def add_figures(self) -> None:
        """Compute the figures asked for that the store lacks (a cell stored before they
        were asked for): the shown items only, their rows already stored are kept."""
        missing = self.missing_figures()
        if missing:
            for out in self.plan.compute(set(self.keys) - set(missing)):
                if isinstance(out, Artifact):
                    self.write(out)

    def close(self) -> CellRun:
        """Mark the cell finished (when every row is stored) and read it back."""
        if not self.known:
            self._begin()
        self.add_figures()
        self.store.finish_cell(self.cid)
        return _read(self.store, self.cid, self.computed, self.plan.config.model_dump())


def run_plans(
    plans: Sequence[tuple[Experiment, Plan]],
    store: ResultStore,
    *,
    progress: bool | None = None,
    backend: Backend | None = None,
) -> list[CellRun]:
    """Run planned cells against the store (see the module docstring), here or on the
    backend's Ray cluster (:mod:`advsr.engine.backend`)."""
    if backend is not None and backend.kind == "ray":
        return _run_ray(plans, store, backend, progress)
    runs = []
    for exp, plan in plans:
        cell = _Cell(exp, plan, store)
        todo = cell.todo
        if todo:
            with progress_bar(len(todo), plan.description or exp.name, progress) as bar:
                for out in plan.compute(cell.done):
                    if cell.write(out):
                        bar.advance()
        runs.append(cell.close())
    return runs


def _run_ray(
    plans: Sequence[tuple[Experiment, Plan]],
    store: ResultStore,
    backend: Backend,
    progress: bool | None,
) -> list[CellRun]:
    """The cells' units as Ray tasks; rows written here as each unit's rows arrive."""
    from advsr.devices import resolve_device

    ray = connect(backend)
    remote = ray.remote(max_retries=3)(run_unit)
    cells = [_Cell(exp, plan, store) for exp, plan in plans]
    cap = backend.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def group(c: _Cell) -> int:  # single items: up to 8 a unit, >= 4 units per worker
        return backend.unit_items or max(1, min(8, len(c.todo) // (4 * cap)))

    units = [
        (i, u)
        for i, c in enumerate(cells)
        if c.todo
        for u in units_of(c.keys, c.todo, c.plan.batch, group(c))
    ]
    queue = iter(units)
    pending: dict[Any, int] = {}
    left = {i: 0 for i in range(len(cells))}  # units still out per cell
    for i, _ in units:
        left[i] += 1
    closed: dict[int, CellRun] = {}  # a cell is finished as soon as its last unit is in

    def submit() -> bool:
        nxt = next(queue, None)
        if nxt is None:
            return False
        i, keys = nxt
        c = cells[i]
        device = str(getattr(c.plan.config, "device", "cpu"))
        gpus = 1 if resolve_device(device).type == "cuda" else 0
        ref = remote.options(num_cpus=1, num_gpus=gpus).remote(
            c.exp.name, c.plan.config.model_dump(exclude_unset=True), keys, 1
        )
        pending[ref] = i
        return True

    with progress_bar(len(units), f"units on Ray ({cap} workers)", progress, unit="units") as bar:
        while len(pending) < cap and submit():
            pass
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                outs = ray.get(ref)
            except Exception as exc:
                for other in pending:
                    ray.cancel(other, force=True)
                raise unwrap(exc) from None
            for out in outs:
                cells[i].write(out)
            left[i] -= 1
            if not left[i]:
                closed[i] = cells[i].close()
            bar.advance()
            submit()
    return [closed[i] if i in closed else c.close() for i, c in enumerate(cells)]


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
        artifacts=tuple(store.artifact_names(cid)),
    )


def run_cells(
    cells: Iterable[tuple[str, Mapping[str, Any]]],
    store: ResultStore,
    *,
    progress: bool | None = None,
    ctx: Context | None = None,
    backend: Backend | None = None,
) -> list[CellRun]:
    """Plan every cell, then run them all (the one entry point of every command).

    Raises:
        AdvsrError: an invalid cell, before any work.
    """
    ctx = ctx or Context()
    return run_plans(plan_cells(cells, ctx), store, progress=progress, backend=backend)


def run_one(
    experiment: str, cfg: Any, store: ResultStore, *, progress: bool | None = None
) -> CellRun:
    """Run one cell of ``experiment`` from its config object or a settings dict."""
    settings = cfg.model_dump(exclude_unset=True) if hasattr(cfg, "model_dump") else dict(cfg)
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
