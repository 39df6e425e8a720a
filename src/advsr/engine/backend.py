"""Where cells run: here (``local``, the default) or on a Ray cluster (``ray``).

With Ray, the driver plans every cell as it does locally (validation, identity, the items
already stored), then cuts the work into units: one fixed batch of a cell whose batches are
independent (:attr:`~advsr.engine.cell.Plan.batch`; consecutive single-item batches are
grouped), or the whole cell otherwise. Each unit is a Ray task that plans the cell again on
its worker (from the validated settings: workers never see the store) and returns the rows
and artefacts of its items. The driver alone writes the store, as each unit's rows arrive:
a row that arrives twice (a retried task) is stored once, a task lost with its node is retried
by Ray (``max_retries``), and a driver killed mid-run resumes from the store on either
backend, exactly as locally.

Workers keep one :class:`~advsr.engine.context.Context` per process, so models, weights
and datasets are loaded once per worker process (from the paths in the settings: on a
multi-machine cluster they must be on a file system every node sees), not once per task.
Each task asks for one CPU (and a GPU when its cell's device is CUDA) and runs torch with as
many threads as CPUs it was given, so two workers on two cores do not oversubscribe. With the
same torch thread count on both sides, a cell's metrics are byte-identical on ``local`` and
``ray`` (the units are the cell's own fixed batches, seeded by their position).

Connecting is bounded: an address must answer a TCP connection and then an HTTP/2 (gRPC)
greeting within :data:`PROBE_TIMEOUT_S` seconds each, as a Ray GCS or Ray Client server does,
and Ray itself makes one connection attempt (at most about 40 s; measured 32 s against a
server that greets and then stays silent) instead of its default 20: a plain TCP server at
the address is refused within ten seconds (measured 5 s) instead of Ray retrying for a
quarter of an hour. A Ray instance started here listens on 127.0.0.1 only (Ray's
single-machine mode), so no other machine can submit work to it.

Ray is the optional ``advsr[ray]`` extra (``make test`` installs it).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from advsr.errors import AdvsrError, InputError, warn

__all__ = ["PROBE_TIMEOUT_S", "Backend", "run_unit", "units_of"]

_CONTEXT: Any = None

PROBE_TIMEOUT_S = 5.0
"""Seconds an address has to accept a TCP connection, and again to answer the HTTP/2
greeting every gRPC server (a Ray GCS, a Ray Client server) sends at once."""
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""The HTTP/2 client preface and an empty SETTINGS frame (RFC 9113 sec. 3.4)."""
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_ONE_ATTEMPT = "RAY_gcs_server_port_wait_time_s"


def _local_cpus() -> int:
    from advsr.devices import usable_cpus

    return usable_cpus()


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
        if self.workers is not None and not self.address and self.workers > _local_cpus():
            raise InputError(
                f"--workers {self.workers}: a local Ray instance runs at most {_local_cpus()} "
                "workers (the CPUs this process may use); give --address for a cluster"
            )
        if self.workers is not None and self.workers > 100_000:
            raise InputError(f"--workers must be at most 100000, got {self.workers}")
        if self.unit_items is not None and self.unit_items < 1:
            raise InputError(f"unit_items must be >= 1, got {self.unit_items}")
        if self.address is not None and not self.address.strip():
            raise InputError(
                "--address is empty: give auto, HOST:PORT or ray://HOST:PORT, or leave it out "
                "($RAY_ADDRESS, else a local Ray instance)"
            )
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
        returns :class:`~advsr.engine.cell.CellRow` and
        :class:`~advsr.engine.cell.Artifact` objects.
    """
    import torch

    from advsr.engine.cell import Artifact
    from advsr.engine.context import Context
    from advsr.engine.plan import plan_cells

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
            with _environ(_ONE_ATTEMPT, os.environ.get(_ONE_ATTEMPT) or "1"):
                ray.init(address=address, **kwargs)
        else:  # Ray's default worker niceness (15) starves its workers on a busy machine
            cpus = backend.workers or os.cpu_count() or 1
            with _single_machine():
                context = ray.init(
                    address="local",
                    num_cpus=cpus,
                    _node_ip_address="127.0.0.1",
                    _system_config={"worker_niceness": 0},
                    **kwargs,
                )
            ip = str(getattr(context, "address_info", {}).get("node_ip_address", "127.0.0.1"))
            if not ip.startswith("127.") and ip != "::1":
                warn(f"the local Ray instance listens on {ip}, not on 127.0.0.1 only")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0][:160]
        notes = []
        if address and isinstance(exc, ConnectionError) and not address.startswith("ray://"):
            notes.append("Ray gave up after one connection attempt, at most about 40 s")
        if address and not os.environ.get("RAY_AUTH_MODE"):
            notes.append(
                "a cluster with token authentication needs RAY_AUTH_MODE=token and its token"
                " in RAY_AUTH_TOKEN or ~/.ray/auth_token"
            )
        hint = f" ({'; '.join(notes)})" if notes else ""
        raise InputError(
            f"cannot reach the Ray cluster at {address or 'a new local one'}: {first}{hint}"
        ) from None
    return ray


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the block (Ray reads some settings when it starts)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    """Ray's single-machine mode for the block: a Ray instance started in it resolves
    127.0.0.1 to itself (not to the machine's network address, as Linux clusters do), so its
    servers bind to 127.0.0.1 only. Ray reads the switch (its default on Windows and macOS)
    when imported, so the imported constant is set too."""
    try:
        constants: Any = importlib.import_module("ray._private.ray_constants")
    except ImportError:  # another Ray layout: the environment alone (read by new processes)
        constants = None
    old = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    with _environ(_SINGLE_MACHINE, "0"):
        if constants is not None and old is not None:
            constants.ENABLE_RAY_CLUSTER = False
        try:
            yield
        finally:
            if constants is not None and old is not None:
                constants.ENABLE_RAY_CLUSTER = old


def _reachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Refuse an address whose host does not answer, or answers but not as a gRPC server
    (Ray itself retries for minutes): one TCP connection and one HTTP/2 greeting, each
    within ``timeout`` seconds. TLS clusters (``RAY_USE_TLS``) get the TCP check only."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError(
            f"Ray address must be auto or HOST:PORT (or ray://HOST:PORT), got {address!r}"
        )
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return
        if not _answers_http2(conn, timeout):
            raise InputError(
                f"cannot reach the Ray cluster at {address}: it does not answer as Ray (no "
                f"gRPC greeting within {timeout:g} s; expected a GCS port, 6379 by default, "
                "or ray://HOST:10001)"
            )


def _answers_http2(conn: socket.socket, timeout: float) -> bool:
    """Whether the server on ``conn`` answers the HTTP/2 preface with a SETTINGS frame
    (the first frame every HTTP/2 server sends) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    head = b""
    try:
        conn.settimeout(timeout)
        conn.sendall(_H2_PREFACE)
        while len(head) < 9:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            conn.settimeout(left)
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # timeout, reset
        return False
    return head[3] == 0x04


def unwrap(exc: BaseException) -> BaseException:
    """A user error raised inside a task, as the error it was (one line at the CLI)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, AdvsrError):
        return cause
    return exc
