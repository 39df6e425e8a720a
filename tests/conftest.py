"""Shared fixtures: the ../shared validation data (skipped when absent) and a CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    # one torch thread per worker (and per subprocess a test starts): workers share the
    # cores instead of oversubscribing them, which on a busy machine slows torch's thread
    # pool down by an order of magnitude
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SET5 = SHARED / "sr" / "Set5"

needs_shared = pytest.mark.skipif(
    not SET5.is_dir(), reason="../shared/data (validation data) is not beside the checkout"
)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``advsr ARGS`` in-process through the real entry point (error handling included).

    A private result store in tmp_path is used unless the args give ``--store``.
    """
    from advsr.cli import main

    monkeypatch.setenv("ADVSR_STORE", str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("ADVSR_PROGRESS", "0")

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["advsr", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        if "No such option" in captured.err:  # a bad-input test must fail for its value
            pytest.fail(f"the test used an option advsr does not have: {captured.err.strip()}")
        return CliResult(code, captured.out, captured.err)

    return run


def sql_run(path: Path, *statements: str) -> None:
    """Run SQL statements on an SQLite file and commit (to damage or fake a store)."""
    import sqlite3

    con = sqlite3.connect(path)
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()


def damage_rows_page(path: Path) -> None:
    """Overwrite the page that holds a store's rows table (in the middle of the file)."""
    import sqlite3

    con = sqlite3.connect(path)
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'rows'").fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    assert 1 < root < len(data) // size
    data[(root - 1) * size : root * size] = b"\xa5" * size
    path.write_bytes(bytes(data))
