"""A store is opened for what it is: a file that is not an advsr store is refused and never
written, a damaged store is one line (nothing repaired or recreated), a read-only store is
read by ``results`` and ``report`` and refused, before any work, by a command that writes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from advsr.engine.driver import run_cells
from advsr.engine.store import APPLICATION_ID, ResultStore
from advsr.errors import NotAStoreError, StoreDamagedError, StoreError, StoreReadOnlyError
from tests.conftest import CliResult, damage_rows_page, sql_run

SIDE_FILES = ("-wal", "-shm", "-journal")


@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small finished eval-sr store (8 sample images, 32x32 crops), as bytes."""
    path = tmp_path_factory.mktemp("template") / "s.sqlite"
    with ResultStore(path) as st:
        run_cells([("eval-sr", {"hr_crop": 32})], st, progress=False)
    return path.read_bytes()


@pytest.fixture
def store(tmp_path: Path, store_bytes: bytes) -> Path:
    """A private copy of the small store."""
    path = tmp_path / "own" / "s.sqlite"
    path.parent.mkdir()
    path.write_bytes(store_bytes)
    return path


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    """Make everything under tmp_path writable again after a read-only test."""
    yield
    for p in [tmp_path, *tmp_path.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _side_files(path: Path) -> list[str]:
    return [s for s in SIDE_FILES if Path(f"{path}{s}").exists()]


def _one_line(res: CliResult, *needles: str) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res.err
    assert lines[0].startswith("advsr: error: "), res.err
    assert "Traceback" not in res.err + res.out and "internal error" not in res.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "eval-sr"\n[grid]\nscale = [4]\n[settings]\nhr_crop = 32\n')
    return spec


def _writers(tmp_path: Path, path: Path) -> list[list[str]]:
    """Commands that write the store: an experiment and ``advsr run``."""
    return [
        ["eval-sr", "--hr-crop", "32", "--store", str(path)],
        ["run", str(_spec(tmp_path)), "--store", str(path)],
    ]


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning a cell (the first work of a writing command) fails the test."""

    def planned(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cell was planned before the store was checked")

    monkeypatch.setattr("advsr.engine.driver.plan_cells", planned)
    monkeypatch.setattr("advsr.engine.run.plan_cells", planned)


# -------------------------------------------------------------- not an advsr store


def test_foreign_sqlite_is_refused_and_never_written(cli, tmp_path, monkeypatch) -> None:
    other = tmp_path / "notes.sqlite"
    sql_run(
        other, "CREATE TABLE notes (id INTEGER, body TEXT)", "INSERT INTO notes VALUES (1, 'x')"
    )
    before = _sha(other)
    _one_line(cli("results", "--store", str(other)), str(other), "another program", "notes")
    _no_work(monkeypatch)
    for args in _writers(tmp_path, other):
        _one_line(cli(*args), str(other), "not an advsr result store")
    assert _sha(other) == before and _side_files(other) == []
    con = sqlite3.connect(other)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["notes"]
    con.close()


def test_non_sqlite_file_and_folder(cli, tmp_path, monkeypatch) -> None:
    text = tmp_path / "results.sqlite"
    text.write_text("a b c\n1 2 3\n" * 100)
    before = _sha(text)
    _one_line(cli("results", "--store", str(text)), str(text), "not an SQLite database")
    _no_work(monkeypatch)
    for args in _writers(tmp_path, text):
        _one_line(cli(*args), str(text), "not an SQLite database")
    assert _sha(text) == before and _side_files(text) == []
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    _one_line(cli("results", "--store", str(folder)), str(folder), "is a folder")
    _one_line(cli(*_writers(tmp_path, folder)[0]), str(folder), "is a folder")
    assert list(folder.iterdir()) == []


def test_library_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    lookalike = tmp_path / "cells.sqlite"  # a table called cells is not enough
    sql_run(lookalike, "CREATE TABLE cells (x INTEGER)")
    before = _sha(lookalike)
    for read_only in (False, True):
        with pytest.raises(NotAStoreError, match="another program"):
            ResultStore(lookalike, read_only=read_only)
    assert _sha(lookalike) == before
    marked = tmp_path / "app.sqlite"
    sql_run(marked, "PRAGMA application_id = 1234")
    with pytest.raises(NotAStoreError, match="application id 0x000004d2"):
        ResultStore(marked)
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(NotAStoreError, match="empty file"):
        ResultStore(empty, read_only=True)
    with pytest.raises(StoreError, match="no result store"):
        ResultStore(tmp_path / "missing.sqlite", read_only=True)
    assert not (tmp_path / "missing.sqlite").exists()
    with ResultStore(empty) as st:  # an empty file is SQLite's empty database: a new store
        assert st.cells() == []
    assert sqlite3.connect(empty).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_a_store_of_an_earlier_advsr_is_read_and_marked_when_written(cli, store) -> None:
    sql_run(store, "PRAGMA application_id = 0")  # as written before the marker existed
    before = _sha(store)
    res = cli("results", "--store", str(store))
    assert res.code == 0 and "8/8" in res.out, res.err
    assert _sha(store) == before  # reading adds no marker
    assert cli("eval-sr", "--hr-crop", "32", "--store", str(store)).code == 0
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.close()


# ------------------------------------------------------------------------- damage


def test_damaged_page(cli, store) -> None:
    damage_rows_page(store)
    before = _sha(store)
    for args in (
        ["results", "--store", str(store), "--rows", "image"],
        ["report", "--experiment", "eval-sr", "--out", str(store.parent / "r.html")],
        ["eval-sr", "--hr-crop", "32", "--store", str(store)],
    ):
        if args[0] == "report":
            args += ["--store", str(store)]
        _one_line(cli(*args), str(store), "is damaged", "malformed")
    assert _sha(store) == before and _side_files(store) == []
    with ResultStore(store, read_only=True) as st, pytest.raises(StoreDamagedError):
        st.rows()


def test_damaged_json_in_a_cell(cli, store, tmp_path) -> None:
    sql_run(store, "UPDATE cells SET config = '{\"model\": '")
    (cid,) = [r["cell_id"] for r in _cells_raw(store)]
    out = str(tmp_path / "r.html")
    for args in (
        ["results", "--store", str(store)],
        ["report", "--experiment", "eval-sr", "--out", out, "--store", str(store)],
        ["eval-sr", "--hr-crop", "32", "--store", str(store)],
    ):
        _one_line(cli(*args), str(store), "is damaged", f"cell {cid}: config is not valid JSON")
    assert not Path(out).exists()
    sql_run(store, "UPDATE cells SET config = '{}'", "UPDATE rows SET metrics = '[1, 2]'")
    line = _one_line(cli("results", "--store", str(store), "--rows", "image"), "is damaged")
    assert "metrics is not a JSON object" in line
    sql_run(store, "UPDATE cells SET info = CAST(x'ff7b7d' AS TEXT)")  # not UTF-8
    with ResultStore(store, read_only=True) as st, pytest.raises(StoreDamagedError, match="UTF-8"):
        st.cells()


def _cells_raw(path: Path) -> list[dict[str, str]]:
    con = sqlite3.connect(path)
    got = [{"cell_id": r[0]} for r in con.execute("SELECT cell_id FROM cells")]
    con.close()
    return got


def test_dropped_rows_table_is_damage_not_an_empty_store(cli, store, tmp_path) -> None:
    sql_run(store, "DROP TABLE rows")
    for args in [["results", "--store", str(store)], *_writers(tmp_path, store)]:
        _one_line(cli(*args), str(store), "is damaged", "its rows table is missing")
    con = sqlite3.connect(store)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    assert names == {"cells", "artifacts"} and _side_files(store) == []  # not recreated
    with pytest.raises(StoreDamagedError, match="rows table is missing"):
        ResultStore(store, read_only=True)


# ---------------------------------------------------------------------- read-only


def _read_back(cli, store: Path, tmp_path: Path) -> tuple[str, str]:
    """``results`` (a pivot) and ``report`` on the store; both must succeed."""
    res = cli("results", "--store", str(store), "--rows", "image", "--value", "psnr")
    assert res.code == 0, res.err
    out = tmp_path / "report.html"
    rep = cli("report", "--experiment", "eval-sr", "--out", str(out), "--store", str(store))
    assert rep.code == 0 and out.stat().st_size > 0, rep.err
    return res.out, rep.out


@pytest.mark.usefixtures("restore_modes")
@pytest.mark.parametrize("where", ["file", "folder"])
def test_read_only_store_is_read_and_refused_for_writing(
    cli, store, tmp_path, monkeypatch, where
) -> None:
    writable = _read_back(cli, store, tmp_path)
    before = _sha(store)
    if where == "file":
        store.chmod(0o444)
        reason = "is read-only (the file is read-only)"
    else:
        store.parent.chmod(0o555)
        reason = "is read-only (its folder is read-only)"
    assert _read_back(cli, store, tmp_path) == writable
    assert _sha(store) == before and _side_files(store) == []
    _no_work(monkeypatch)
    for args in _writers(tmp_path, store):
        _one_line(cli(*args), str(store), reason)
    assert _sha(store) == before and _side_files(store) == []
    with pytest.raises(StoreReadOnlyError, match="read-only"):
        ResultStore(store)
    with ResultStore(store, read_only=True) as st:
        assert st.cells()[0]["stored"] == 8


def test_a_store_opened_read_only_never_writes(store) -> None:
    before = _sha(store)
    with ResultStore(store, read_only=True) as st:
        cid = st.cells()[0]["cell_id"]
        with pytest.raises(StoreReadOnlyError):
            st.put_artifact(cid, "x", b"x", "text/plain")
        with pytest.raises(StoreReadOnlyError):
            st.begin_cell("eval-sr", {"other": 1}, ["a"])
    assert _sha(store) == before and _side_files(store) == []
    assert os.access(store, os.W_OK)


@pytest.mark.usefixtures("restore_modes")
def test_a_read_only_store_with_a_live_journal_is_read_with_it(store) -> None:
    writer = sqlite3.connect(store)  # an open writer keeps its commit in the WAL file
    writer.execute("UPDATE cells SET finished = NULL")
    writer.commit()
    try:
        assert _side_files(store) == ["-wal", "-shm"]
        store.chmod(0o444)
        with ResultStore(store, read_only=True) as st:
            assert st.cells()[0]["finished"] is False  # the WAL was read, not ignored
    finally:
        writer.close()
