"""The Ray backend: the same cells give byte-identical rows on ``local`` and ``ray``; a node
lost mid-run loses nothing (a simulated 3-node cluster); a driver killed with SIGKILL resumes
from the store; and the backend's options refuse bad input with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from advsr.engine.backend import Backend, units_of
from advsr.engine.driver import run_cells
from advsr.engine.store import ResultStore
from advsr.errors import InputError

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

# an SR attack cell (per-image units) and a defend cell (batches of 4): several units each
SR_CELLS: list[tuple[str, dict[str, Any]]] = [
    ("attack-sr", {"model": "demo-carn-m", "scale": 4, "hr_crop": 32, "steps": 3, "eps": e})
    for e in (2 / 255, 8 / 255)
]
DEFEND_CELLS: list[tuple[str, dict[str, Any]]] = [
    ("defend", {"attack": "pgd@8/255", "defense": d, "limit": 12, "batch_size": 4, "steps": 3})
    for d in ("median:size=3x3", "bit-depth:bits=3")
]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Ray tasks run torch with one thread (one CPU each); the local side does the same."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rows(store: Path) -> list[tuple[str, str, str]]:
    """(cell, image, metrics) of every stored row, sorted; timings left out."""
    with ResultStore(store) as st:
        rows = st.rows()
    return sorted(
        (
            r["cell_id"],
            r["key"],
            json.dumps({k: v for k, v in r.items() if not k.endswith("seconds")}),
        )
        for r in rows
    )


def test_units_cover_each_todo_key_once() -> None:
    keys = [f"k{i}" for i in range(23)]
    todo = set(keys[3:17])
    for batch in (1, 4, None):
        units = units_of(keys, todo, batch)
        flat = [k for u in units for k in u]
        assert len(flat) == len(set(flat)) and todo <= set(flat)
    assert units_of(keys, todo, 4)[0] == keys[0:4]  # fixed batches: k3 runs with k0-k2
    assert len(units_of(keys, todo, 4)) == 5 and len(units_of(keys, todo, 1)) == 2


def test_backend_options_are_checked() -> None:
    with pytest.raises(InputError, match="workers"):
        Backend("ray", workers=0)
    with pytest.raises(InputError, match="need --backend ray"):
        Backend("local", workers=2)
    with pytest.raises(InputError, match="local or ray"):
        Backend("spark")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "spark"], "backend must be local or ray"),
        (["--workers", "2"], "--address and --workers need --backend ray"),
        (["--backend", "ray", "--workers", "0"], "workers must be >= 1"),
        (["--backend", "ray", "--address", "nohost"], "Ray address must be auto or HOST:PORT"),
        (["--backend", "ray", "--address", "127.0.0.1:9"], "cannot reach the Ray cluster"),
    ],
)
def test_bad_backend_options_are_one_line_and_exit_2(args: list[str], message: str, cli) -> None:
    res = cli("defend", "--limit", "2", *args)
    assert res.code == 2 and message in res.err
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err


@pytest.fixture(scope="module", autouse=True)
def _ray_down_after() -> Iterator[None]:
    yield
    ray.shutdown()


@pytest.fixture
def local_ray() -> Any:
    """A local Ray instance with 2 CPUs (started once, shared by the tests that need it)."""
    from advsr.engine.backend import connect

    return connect(Backend("ray", workers=2))


@pytest.mark.parametrize("cells", [SR_CELLS, DEFEND_CELLS], ids=["attack-sr", "defend"])
def test_local_and_ray_store_identical_rows(
    cells: list[tuple[str, dict[str, Any]]], local_ray: Any, one_thread: None, tmp_path: Path
) -> None:
    a, b = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    with ResultStore(a) as st:
        run_cells(cells, st, progress=False)
    with ResultStore(b) as st:
        runs = run_cells(cells, st, progress=False, backend=Backend("ray", workers=2))
    assert all(r.finished and r.computed == r.expected for r in runs)
    assert _rows(a) == _rows(b) and len(_rows(a)) == sum(r.expected for r in runs)


def test_node_lost_mid_run_loses_nothing(one_thread: None, tmp_path: Path) -> None:
    """Three nodes (a head without CPUs, two 1-CPU workers); one worker node is removed once
    the first rows are stored. Ray retries its tasks on the other node; every row is stored
    exactly once and equals an uninterrupted local run."""
    from ray.cluster_utils import Cluster

    cells = [
        ("attack-sr", {"model": "demo-carn-m", "scale": 4, "hr_crop": 32, "steps": 12, "eps": e})
        for e in (2 / 255, 8 / 255)
    ]
    ref = tmp_path / "ref.sqlite"
    with ResultStore(ref) as st:
        run_cells(cells, st, progress=False)
    expected = _rows(ref)

    ray.shutdown()  # the local instance of the other tests, if this process has one
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "_system_config": {"worker_niceness": 0}},
    )
    victim = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    removed = threading.Event()
    out = tmp_path / "ray.sqlite"

    def remove_when_rows_arrive() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not removed.is_set():
            if out.exists() and len(_rows(out)) >= 1:
                cluster.remove_node(victim, allow_graceful=False)
                removed.set()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=remove_when_rows_arrive, daemon=True)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        killer.start()
        with ResultStore(out) as st:
            runs = run_cells(cells, st, progress=False, backend=Backend("ray", workers=2))
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert removed.is_set(), "the run finished before a node could be removed"
    assert all(r.finished for r in runs)
    got = _rows(out)
    assert len(got) == len(set(got)) == len(expected)  # each row once
    assert got == expected


SPEC = """experiment = "attack-sr"
[grid]
eps = [0.0078431372549, 0.0313725490196]
[settings]
model = "demo-carn-m"
scale = 4
hr_crop = 32
steps = 25
"""


def _advsr(*args: str) -> list[str]:
    return [sys.executable, "-m", "advsr", *args]


def test_driver_killed_mid_run_resumes(tmp_path: Path) -> None:
    """SIGKILL the driver (and its Ray processes: one process group) once some rows are
    stored; the same command again finishes the run with every row stored once."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    store = tmp_path / "s.sqlite"
    cmd = _advsr("run", str(spec), "--store", str(store), "--backend", "ray", "--workers", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    partial = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists():
                partial = len(_rows(store))
                if partial >= 1:
                    break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert partial >= 1, "no row was stored before the kill"
    stored = len(_rows(store))
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    total = sum(r["expected"] for r in doc["runs"])
    assert stored < total, "the run finished before the kill"
    assert doc["computed"] == total - stored and doc["from_store"] == stored
    rows = _rows(store)
    assert len(rows) == len({(c, i) for c, i, _ in rows}) == total
