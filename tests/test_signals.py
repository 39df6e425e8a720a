"""Ctrl-C and a failing stdout at the edges of a real ``advsr`` process (issue 26).

Every test runs ``python -m advsr`` in a subprocess, in a session of its own so that SIGINT
goes to its whole process group as a terminal's Ctrl-C does. Ctrl-C at any moment ends with
exactly one line, ``advsr: interrupted (rows already computed are in the store)``, status
130 and no traceback; a closed or full stdout with one error line and status 2; a reader
that went away quietly with status 141 (see :mod:`advsr._entry`).

The processes of one group of tests run at once (a module fixture starts them, each test
checks its own), which keeps the file well under a minute on two busy cores.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from advsr._entry import BROKEN_PIPE, INTERRUPTED, MESSAGE, OUTPUT_FAILED
from tests.conftest import REPO

# a cheap job that runs for minutes: 100000 PGD steps on 4 digits (one cell)
JOB = ["attack-clf", "--attack", "pgd@8/255", "--steps", "100000", "--limit", "4"]
JOB += ["--probes", "off"]
LIST = ["list", "attacks"]  # a short command with a 20 kB table
WAIT = 150.0  # seconds a process may take to end (it takes < 1 after a Ctrl-C)
DELAYS = [1.0, 2.0, 3.0, 5.0, 8.0]
GAPS = [(), (0.0, 0.002, 0.05, 0.2)]  # the further Ctrl-Cs after the first, seconds apart

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")

K = TypeVar("K", bound=Hashable)


@dataclass
class Run:
    """How one process ended."""

    code: int
    out: str
    err: str
    note: str = ""  # what went wrong in the test itself


def _env(folder: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "ADVSR_THREADS": "1",
        "ADVSR_PROGRESS": "0",
        "ADVSR_STORE": str(folder / "store.sqlite"),
        **extra,
    }


def _start(folder: Path, args: list[str], stdout: Any = subprocess.DEVNULL, **env: str):
    """``python -m advsr ARGS`` in ``folder``, stderr (and stdout if asked) piped, bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "advsr", *args],
        cwd=folder,
        env=_env(folder, **env),
        stdout=stdout,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _ctrl_c(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group, as a terminal sends it (nothing once it has ended)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)


def _end(proc: subprocess.Popen[bytes], out: bytes = b"", err: bytes = b"", note: str = ""):
    """Wait for the process (one that hangs is killed); how it ended."""
    try:
        rest, more = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rest, more = proc.communicate()
        note = f"still running after {WAIT:.0f} s"
    text = (out + (rest or b"")).decode(errors="replace")
    return Run(proc.returncode, text, (err + (more or b"")).decode(errors="replace"), note)


def _at_once(jobs: dict[K, Callable[[], Run]]) -> dict[K, Run]:
    """Run the jobs at the same time; their results by key."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def _assert_interrupted(run: Run, progress: bool = False) -> None:
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    if progress:  # progress lines first (`advsr: <cell>: k/n rows ...`), the message last
        lines = lines[-1:]
    assert not run.note, (run.note, run.err)
    assert run.code == INTERRUPTED, (run.code, run.err)
    assert "Traceback" not in run.err and run.err.count(MESSAGE) == 1, run.err
    assert lines == [MESSAGE], run.err


def _after(folder: Path, delay: float) -> Run:
    """The job, Ctrl-C ``delay`` seconds after its start."""
    proc = _start(folder, JOB)
    time.sleep(delay)
    note = "" if proc.poll() is None else "the job ended before its Ctrl-C"
    _ctrl_c(proc)
    return _end(proc, note=note)


@pytest.fixture(scope="module")
def delayed(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Run]:
    """The job interrupted at each of :data:`DELAYS`, all at once."""
    root = tmp_path_factory.mktemp("delays")
    return _at_once({d: (lambda d=d: _after(root / str(d), d)) for d in DELAYS})


@pytest.mark.parametrize("delay", DELAYS)
def test_ctrl_c_at_any_delay(delayed: dict[float, Run], delay: float) -> None:
    """On a loaded machine these land in the imports (torch, Typer: seconds), later in the
    attack (the test below interrupts the attack itself)."""
    _assert_interrupted(delayed[delay])


def _startup_seconds(folder: Path) -> float:
    """How long the interpreter takes, now, to start and import advsr's entry module (a
    Ctrl-C before that is the interpreter's own: no package can catch it)."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import runpy, advsr._entry"], env=_env(folder))
    return time.monotonic() - t0


def test_ctrl_c_while_importing(tmp_path: Path) -> None:
    """0.05-0.3 s after the start on an idle machine (3x the interpreter's own start on a
    busy one): advsr's imports have just begun."""
    delay = min(max(0.05, 3 * _startup_seconds(tmp_path)), 1.5)
    _assert_interrupted(_after(tmp_path, delay))


def _in_attack(folder: Path, gaps: tuple[float, ...]) -> Run:
    """The job, Ctrl-C once its first progress line is out, then one more per gap."""
    proc = _start(folder, JOB, ADVSR_PROGRESS="1", ADVSR_PROGRESS_EVERY="0")
    assert proc.stderr is not None
    seen = b""
    while b"pgd@8/255" not in seen:  # the first progress line: the cell computes
        line = proc.stderr.readline()
        if not line:
            return _end(proc, err=seen, note="the job ended without a progress line")
        seen += line
    _ctrl_c(proc)
    for gap in gaps:
        time.sleep(gap)
        _ctrl_c(proc)
    return _end(proc, err=seen)


@pytest.fixture(scope="module")
def in_attack(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[float, ...], Run]:
    """The job interrupted during the attack, once and several times, both at once."""
    root = tmp_path_factory.mktemp("attack")
    return _at_once({g: (lambda g=g: _in_attack(root / str(len(g)), g)) for g in GAPS})


@pytest.mark.parametrize("gaps", GAPS, ids=["once", "five-times"])
def test_ctrl_c_during_the_attack(in_attack: dict[tuple[float, ...], Run], gaps) -> None:
    """More Ctrl-Cs, before or while the first one is handled, change nothing."""
    _assert_interrupted(in_attack[gaps], progress=True)


def _at_finish(folder: Path) -> Run:
    """``advsr list attacks``, Ctrl-C as its table comes out."""
    proc = _start(folder, LIST, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    _ctrl_c(proc)
    return _end(proc, out=first)


def _to(folder: Path, args: list[str], stdout: Any) -> Run:
    """``advsr ARGS`` with stdout on ``stdout`` (a file or a descriptor)."""
    return _end(_start(folder, args, stdout=stdout))


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """``advsr list attacks``: interrupted as it finishes, on /dev/full (table and JSON)
    and into a pipe whose reader is gone (``| head`` that ended first), all at once."""
    root = tmp_path_factory.mktemp("short")
    read_end, gone = os.pipe()
    os.close(read_end)
    full = open("/dev/full", "w") if Path("/dev/full").exists() else None  # noqa: SIM115
    jobs: dict[str, Callable[[], Run]] = {
        "finish": lambda: _at_finish(root / "finish"),
        "gone": lambda: _to(root / "gone", LIST, gone),
    }
    if full is not None:
        jobs["full"] = lambda: _to(root / "full", LIST, full)
        jobs["full-json"] = lambda: _to(root / "full-json", [*LIST, "--json"], full)
    try:
        return _at_once(jobs)
    finally:
        os.close(gone)
        if full is not None:
            full.close()


def test_ctrl_c_as_the_command_finishes(short: dict[str, Run]) -> None:
    """While the table is written or the exit handlers run: status 130 and the one line
    (the table may be cut); later, in the interpreter's teardown, the Ctrl-C is ignored:
    the run is complete, status 0."""
    run = short["finish"]
    assert "Traceback" not in run.err and run.code in (0, INTERRUPTED), (run.code, run.err)
    if run.code == INTERRUPTED:
        _assert_interrupted(run)
    else:
        assert run.err == "" and run.out.rstrip().endswith("┘"), run.err  # the whole table


def _one_error(run: Run, why: str) -> None:
    lines = [ln for ln in run.err.splitlines() if ln.strip()]
    assert run.code == OUTPUT_FAILED and "Traceback" not in run.err, (run.code, run.err)
    assert lines == [f"advsr: error: cannot write the output: {why}"], run.err


def test_reader_gone(short: dict[str, Run]) -> None:
    """A broken pipe is quiet: status 141, what the shell reports for ``cat`` there."""
    run = short["gone"]
    assert run.code == BROKEN_PIPE and run.err == "", (run.code, run.err)


@pytest.mark.parametrize("job", ["full", "full-json"])
def test_stdout_full(short: dict[str, Run], job: str) -> None:
    """``> /dev/full``: one line, status 2, for rich's table and for the JSON document."""
    if job not in short:
        pytest.skip("no /dev/full on this platform")
    _one_error(short[job], "No space left on device")


def test_stdout_closed(tmp_path: Path) -> None:
    """``advsr list attacks >&-``: one line before any import, status 2."""
    res = subprocess.run(
        ["sh", "-c", 'exec "$0" -m advsr list attacks >&-', sys.executable],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    _one_error(Run(res.returncode, res.stdout, res.stderr), "stdout is closed")
