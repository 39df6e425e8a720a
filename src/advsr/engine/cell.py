"""Experiment cells: the registered unit of work, its config, its identity, its rows.

An experiment is an :class:`Experiment` in :data:`EXPERIMENTS`: a pydantic config class (the
single source of its settings: the CLI options derive from it), a ``plan`` function that
validates one config and resolves everything a cell needs without doing the work (the
dataset's items, the identity, a row generator), and the formatters that turn stored rows
into a JSON document, tables, plots and figures. The driver (:mod:`.driver`) plans every
cell of a run before computing any, and is the only writer of the store.

**The identity rule** (:func:`cell_identity`): a cell is identified by its config with each
field treated by the role it declares (:mod:`advsr.settings`): :data:`~advsr.settings.NEUTRAL`
fields are dropped; :data:`SEEDED` fields (the seed, and a batch size that decides which
images share a random draw) are kept only when the cell draws random numbers;
:data:`ATTACK` fields are replaced by the configured attack's identity (its name, budget and
effective settings); :data:`~advsr.settings.WEIGHTS`, :data:`~advsr.settings.MODEL`,
:data:`~advsr.settings.DATA` and :data:`~advsr.settings.FILE` fields by content hashes (and
so are the files named inside attack settings and spec strings: :mod:`advsr.files`); the
experiment's version is added.

Example:
    >>> from advsr.engine.cell import EXPERIMENTS
    >>> "eval-sr" in EXPERIMENTS.names()
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from advsr.registry import Registry
from advsr.settings import DATA, FILE, MODEL, NEUTRAL, WEIGHTS, Role, Settings, field_role

if TYPE_CHECKING:
    from advsr.attacks.base import Attack
    from advsr.engine.context import Context
    from advsr.engine.store import ResultStore
    from advsr.report import Figure, Plot, ReportTable, Scatter3D

__all__ = [
    "ATTACK",
    "EXPERIMENTS",
    "SEEDED",
    "Artifact",
    "CellConfig",
    "CellRow",
    "CellRun",
    "Experiment",
    "Item",
    "Plan",
    "ReportParts",
    "cell_identity",
    "figure_artifacts",
    "register_experiment",
    "stored_figures",
]

MAX_STEPS = 100_000
"""The most iterations a cell's attack may take (the attacks' own bound)."""
MAX_BATCH = 4_096
"""The most images a cell processes per batch."""
MAX_DRAWS = 1_000
"""The most EOT samples per step and fresh draws per image of a stochastic defense."""

SEEDED = Role("seeded")
"""A field that matters only when the cell draws random numbers (seed, batch layout)."""
ATTACK = Role("attack")
"""A field that configures the cell's attack (replaced by the attack's identity)."""


class CellConfig(Settings):
    """Base of every experiment config: frozen, unknown settings refused, a device."""

    device: Annotated[str, NEUTRAL] = "auto"
    """auto, cpu, cuda, cuda:N (not part of the identity)."""

    identity_defaults: ClassVar[dict[str, Any]] = {"random_weights": False}
    """Settings added after results were stored, at the value that reproduces the older
    behaviour: at that value they are left out of the identity, so stored cells match."""

    @property
    def init_seed(self) -> int | None:
        """The seed an untrained model is initialised from (``random_weights``: the cell's
        ``seed``); None: the model needs real weights."""
        if not getattr(self, "random_weights", False):
            return None
        return int(getattr(self, "seed", 0))


@dataclass(frozen=True)
class Item:
    """One expected row: ``key`` identifies the item in its dataset (a relative path or an
    index: unique), ``name`` is how tables show it."""

    key: str
    name: str


@dataclass(frozen=True)
class CellRow:
    """One computed row: the item's position, key and name, its metrics and its time."""

    idx: int
    key: str
    name: str
    metrics: Mapping[str, Any]
    seconds: float


@dataclass(frozen=True)
class Artifact:
    """A named by-product of a cell (a PNG figure, a perturbation file) for reports."""

    name: str
    data: bytes
    media_type: str = "image/png"


Compute = Callable[[set[str]], Iterator["CellRow | Artifact"]]
"""``skip -> rows`` (and artefacts) for the items whose keys are not in ``skip``."""


@dataclass(frozen=True)
class Plan:
    """A validated cell, ready to run.

    Attributes:
        config: the validated config.
        identity: what identifies the cell (see :func:`cell_identity`).
        items: the rows the cell must have.
        compute: the pure row generator (loads what it needs lazily; never touches the store).
        description: progress-bar text.
        info: facts about the cell stored beside it but not part of its identity (e.g. what a
            model file says about its training).
        batch: the rows of each fixed batch of this many consecutive items depend on that
            batch alone, so batches can run anywhere (units of work on a cluster); None: the
            cell is one unit (a universal perturbation, a training run).
        figures: the items whose figures were asked for (see the field).
    """

    config: Settings
    identity: dict[str, Any]
    items: list[Item]
    compute: Compute
    description: str
    info: dict[str, Any] = field(default_factory=dict)
    batch: int | None = None
    figures: tuple[str, ...] = ()
    """Keys of the items whose figures were asked for (artefact groups named by the key):
    a cell already stored without them is recomputed for those items only."""


@dataclass(frozen=True)
class CellRun:
    """One cell after running (or reading back): its rows come from the store.

    Attributes:
        experiment: experiment name.
        cell_id: the store's id of the cell.
        config: the config as given (neutral settings included).
        identity: the cell's identity.
        info: facts stored beside the cell.
        rows: the stored rows, in item order.
        expected: number of rows the cell must have.
        computed: rows computed in this run.
        from_store: rows that were already stored.
        artifacts: names of the cell's stored artefacts.
    """

    experiment: str
    cell_id: str
    config: dict[str, Any]
    identity: dict[str, Any]
    info: dict[str, Any]
    rows: list[dict[str, Any]]
    expected: int
    computed: int
    from_store: int
    artifacts: tuple[str, ...] = ()

    @property
    def shown(self) -> dict[str, Any]:
        """The config as tables show it: every setting declared as a weight file, a model
        file or a dataset folder by its name and short content hash (from the identity, so
        the file need not exist any more), never a path; an untrained model (random
        weights) says so in its name."""
        from advsr.files import identity_label
        from advsr.settings import file_roles

        known = self.experiment in EXPERIMENTS
        roles = file_roles(EXPERIMENTS.get(self.experiment).config) if known else {}
        out = {
            k: identity_label(v, self.identity.get(k)) if k in roles else v
            for k, v in self.config.items()
        }
        if self.config.get("random_weights"):
            for k in (k for k, r in roles.items() if r == "model" and k in out):
                v = out[k]
                out[k] = (
                    [f"{m} (random weights)" for m in v]
                    if isinstance(v, list)
                    else (f"{v} (random weights)")
                )
        return out

    @property
    def stored(self) -> int:
        """Rows in the store."""
        return len(self.rows)

    @property
    def finished(self) -> bool:
        """Every expected row is stored."""
        return self.stored >= self.expected

    @property
    def mean(self) -> dict[str, float]:
        """Mean over rows of every float metric (integers and the timing left out)."""
        if not self.rows:
            return {}
        keys = [k for k, v in self.rows[0].items() if isinstance(v, float) and k != "seconds"]
        return {
            k: sum(float(r[k]) for r in self.rows if isinstance(r.get(k), float))
            / max(1, sum(isinstance(r.get(k), float) for r in self.rows))
            for k in keys
        }

    def brief(self) -> dict[str, Any]:
        """Id and row counts: expected, stored, computed now, read from the store."""
        return {
            "cell_id": self.cell_id,
            "expected": self.expected,
            "stored": self.stored,
            "computed": self.computed,
            "from_store": self.from_store,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (rows included)."""
        return {
            "experiment": self.experiment,
            "cell_id": self.cell_id,
            "config": self.config,
            "shown": self.shown,
            "info": self.info,
            "expected": self.expected,
            "stored": self.stored,
            "computed": self.computed,
            "from_store": self.from_store,
            "mean": self.mean,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class ReportParts:
    """What a report shows: an introduction, tables, plots and figures."""

    title: str
    intro: str
    tables: Sequence[ReportTable]
    plots: Sequence[Plot | Scatter3D] = ()
    figures: Sequence[Figure] = ()


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (cell type).

    Attributes:
        name: registry name (``eval-sr``).
        config: its pydantic config class.
        plan: ``(config, context) -> Plan``: validation and resolution, no heavy work.
        summarise: ``(cells, store) -> document``: the JSON document of a set of cells,
            from stored rows only (tables, means, curves).
        tables: ``document -> tables`` for the terminal and the report.
        description: one line for listings.
        report: ``(document, cells, store) -> ReportParts`` with plots and figures; None:
            the tables under the description.
        version: bumped when a metric's definition changes (old cells stop matching).
        flags: ``cells -> {cell_id: [flag]}``, the gradient-masking flags of the cells.
    """

    name: str
    config: type[Settings]
    plan: Callable[[Any, Context], Plan]
    summarise: Callable[[list[CellRun], ResultStore | None], dict[str, Any]]
    tables: Callable[[dict[str, Any]], list[ReportTable]]
    description: str
    report: Callable[[dict[str, Any], list[CellRun], ResultStore | None], ReportParts] | None = None
    version: int = 1
    flags: Callable[[list[CellRun]], dict[str, list[dict[str, str]]]] | None = None
    """Gradient-masking flags per cell id (classifier attacks; see
    :mod:`advsr.attacks.probes`), for tables other than the experiment's own."""

    def report_parts(
        self, doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None
    ) -> ReportParts:
        """What the report of ``cells`` shows."""
        if self.report is not None:
            return self.report(doc, cells, store)
        return ReportParts(f"advsr {self.name}", self.description, self.tables(doc))


EXPERIMENTS: Registry[Experiment] = Registry("experiment", package="advsr.experiments")


def register_experiment(experiment: Experiment) -> Experiment:
    """Add an experiment to :data:`EXPERIMENTS` (one call per experiment module)."""
    return EXPERIMENTS.register(experiment.name, experiment, experiment.description)


def cell_identity(
    cfg: Settings,
    ctx: Context,
    *,
    version: int,
    attack: Attack | None = None,
    stochastic: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The identity of a cell by the one rule (see the module docstring).

    Args:
        cfg: the validated config.
        ctx: resolves content hashes (cached per run).
        version: the experiment's version.
        attack: the configured attack that replaces the :data:`ATTACK` fields.
        stochastic: whether the cell draws random numbers (keeps :data:`SEEDED` fields);
            the attack's own stochasticity is added.
        extra: experiment-specific resolved parts (e.g. a defense's canonical spec).
    """
    random = stochastic or (attack is not None and attack.stochastic)
    out: dict[str, Any] = {}
    defaults = getattr(cfg, "identity_defaults", {})
    for name, value in cfg.model_dump().items():
        role = field_role(type(cfg), name)
        if role == str(NEUTRAL) or role == str(ATTACK):
            continue
        if name in defaults and value == defaults[name]:
            continue
        if role == str(SEEDED) and not random:
            continue
        if role == str(WEIGHTS):
            out[name] = ctx.weights_identity(value)
        elif role == str(MODEL):
            out[name] = ctx.model_identity(value)
        elif role == str(DATA):
            out[name] = None if value is None else ctx.data_identity(value)
        elif role == str(FILE):
            from advsr.files import value_identity

            out[name] = value_identity(role, value)
        else:
            out[name] = value
    init_seed = getattr(cfg, "init_seed", None)
    if init_seed is not None:  # untrained weights: the initialisation is the model
        out["init_seed"] = init_seed
    if attack is not None:
        out["attack"] = attack.identity()
    out.update(extra or {})
    out["version"] = version
    return out


def figure_artifacts(group: str, images: Sequence[tuple[str, Any]]) -> Iterator[Artifact]:
    """A figure as PNG artefacts ``<group>/<n>:<caption>.png`` (images ``(1, 3, H, W)``)."""
    from advsr.io import encode_png

    for n, (caption, img) in enumerate(images):
        yield Artifact(f"{group}/{n:02d}:{caption}.png", encode_png(img.detach().float().cpu()))


def stored_figures(
    cells: Sequence[CellRun],
    store: ResultStore | None,
    title: Callable[[CellRun, str], str] | None = None,
) -> list[Figure]:
    """The figures stored by :func:`figure_artifacts`, one per group, in stored order."""
    from advsr.report import Figure

    if store is None:
        return []
    out = []
    for c in cells:
        groups: dict[str, list[tuple[str, Any]]] = {}
        for name, (media, data) in store.artifacts(c.cell_id).items():
            group, _, leaf = name.rpartition("/")
            if media != "image/png" or not group:
                continue
            groups.setdefault(group, []).append((leaf.split(":", 1)[-1].removesuffix(".png"), data))
        out += [Figure(title(c, g) if title else g, imgs) for g, imgs in groups.items()]
    return out


def timed(
    rows: Iterator[tuple[int, Item, Mapping[str, Any]]],
) -> Iterator[CellRow]:
    """Attach the time since the previous row to each ``(idx, item, metrics)``."""
    t0 = time.perf_counter()
    for idx, item, metrics in rows:
        t1 = time.perf_counter()
        yield CellRow(idx, item.key, item.name, metrics, t1 - t0)
        t0 = time.perf_counter()
