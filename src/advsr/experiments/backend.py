"""Where cells run: here (``local``, the default) or on a Ray cluster (``ray``).

With Ray, the driver plans every cell as it does locally (validation, identity, the items
already stored), then cuts the work into units: one fixed batch of a cell whose batches are
independent (:attr:`~advsr.experiments.cell.Plan.batch`; consecutive single-item batches are
grouped), or the whole cell otherwise. Each unit is a Ray task that plans the cell again on
its worker (from the validated settings: workers never see the store) and returns the rows
and artefacts of its items. The driver alone writes the store, as each unit's rows arrive:
a row that arrives twice (a retried task) is stored once, a task lost with its node is retried
by Ray (``max_retries``), and a driver killed mid-run resumes from the store on either
backend, exactly as locally.

Workers keep one :class:`~advsr.experiments.context.Context` per process, so models, weights
and datasets are loaded once per worker process (from the paths in the settings: on a
multi-machine cluster they must be on a file system every node sees), not once per task.
Each task asks for one CPU (and a GPU when its cell's device is CUDA) and runs torch with as
many threads as CPUs it was given, so two workers on two cores do not oversubscribe. With the
same torch thread count on both sides, a cell's metrics are byte-identical on ``local`` and
``ray`` (the units are the cell's own fixed batches, seeded by their position).

Ray is the optional ``advsr[ray]`` extra (``make test`` installs it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from advsr.errors import AdvsrError, InputError

__all__ = ["Backend", "run_unit", "units_of"]

_CONTEXT: Any = None


@dataclass(frozen=True)
class Backend:
    """Where cells run.

    Attributes:
        kind: ``local`` (this process) or ``ray``.
        address: a running Ray cluster (``auto``, ``ray://host:10001`` ...); None: the
            ``RAY_ADDRESS`` environment variable, else a Ray instance started here.
        workers: tasks in flight at once (None: the cluster's CPUs).
        unit_items: items per unit for cells computed one item at a time (None: up to 8,
            keeping at least 4 units per worker).
    """

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    workers: int | None = None
    unit_items: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise InputError(f"backend must be local or ray, got {self.kind!r}")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"workers must be >= 1, got {self.workers}")
        if self.unit_items is not None and self.unit_items < 1:
            raise InputError(f"unit_items must be >= 1, got {self.unit_items}")
        if self.kind == "local" and (self.address or self.workers):
            raise InputError("--address and --workers need --backend ray")


def units_of(
    keys: Sequence[str], todo: set[str], batch: int | None, group: int = 8
) -> list[list[str]]:
    """The units of one cell: its fixed batches of ``batch`` consecutive items that hold a
    key in ``todo`` (single-item batches grouped ``group`` at a time), or one unit.

    Example:
        >>> units_of(["a", "b", "c", "d", "e"], {"d", "e"}, 2)
        [['c', 'd'], ['e']]
        >>> units_of(["a", "b", "c"], {"a", "c"}, 1)
        [['a', 'c']]
        >>> units_of(["a", "b", "c"], {"b"}, None)
        [['a', 'b', 'c']]
    """
    if batch is None:
        return [list(keys)]
    fixed = [list(keys[i : i + batch]) for i in range(0, len(keys), batch)]
    fixed = [b for b in fixed if todo.intersection(b)]
    if batch > 1:
        return fixed
    return [[k for b in fixed[i : i + group] for k in b] for i in range(0, len(fixed), group)]


def run_unit(experiment: str, settings: dict[str, Any], keys: list[str], threads: int) -> list[Any]:
    """Plan one cell on a worker and compute the rows (and artefacts) of ``keys``.

    Shape:
        returns :class:`~advsr.experiments.cell.CellRow` and
        :class:`~advsr.experiments.cell.Artifact` objects.
    """
    import torch

    from advsr.experiments.cell import Artifact
    from advsr.experiments.context import Context
    from advsr.experiments.driver import plan_cells

    global _CONTEXT
    torch.set_num_threads(max(1, threads))
    if _CONTEXT is None:
        _CONTEXT = Context()
    ((_, plan),) = plan_cells([(experiment, settings)], _CONTEXT)
    wanted = set(keys)
    skip = {it.key for it in plan.items} - wanted
    return [o for o in plan.compute(skip) if isinstance(o, Artifact) or o.key in wanted]


def ray_module() -> Any:
    """The ``ray`` module, or one clear error naming the extra."""
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install 'advsr[ray]'") from None
    return ray


def connect(backend: Backend) -> Any:
    """Connect to (or start) the Ray cluster of ``backend``; returns the ``ray`` module."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    address = backend.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
        "configure_logging": False,
    }
    if address and address != "auto":
        _reachable(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # Ray's default worker niceness (15) starves its workers on a busy machine
            cpus = backend.workers or os.cpu_count() or 1
            ray.init(
                address="local", num_cpus=cpus, _system_config={"worker_niceness": 0}, **kwargs
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0][:160]
        hint = ""
        if address and not os.environ.get("RAY_AUTH_MODE"):
            hint = (
                " (a cluster with token authentication needs RAY_AUTH_MODE=token and its token"
                " in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        raise InputError(
            f"cannot reach the Ray cluster at {address or 'a new local one'}: {first}{hint}"
        ) from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address whose host does not answer (Ray itself retries for minutes)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError(
            f"Ray address must be auto or HOST:PORT (or ray://HOST:PORT), got {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def unwrap(exc: BaseException) -> BaseException:
    """A user error raised inside a task, as the error it was (one line at the CLI)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, AdvsrError):
        return cause
    return exc
