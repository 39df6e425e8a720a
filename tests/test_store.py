"""Result store: idempotent cells, per-image commits, pivots, schema and file errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from advsr.errors import InputError, StoreError
from advsr.experiments.runner import CellRow, run_cell
from advsr.experiments.store import ResultStore, cell_id_of


def test_cell_id_is_canonical() -> None:
    assert cell_id_of("e", {"a": 1, "b": [1, 2]}) == cell_id_of("e", {"b": [1, 2], "a": 1})
    assert cell_id_of("e", {"a": 1}) != cell_id_of("e", {"a": 2})
    assert cell_id_of("e", {"a": 1}) != cell_id_of("f", {"a": 1})
    with pytest.raises(InputError):
        cell_id_of("e", {"a": object()})


def test_rows_written_once_and_pivot(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    assert st._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for model, base in (("m1", 30.0), ("m2", 20.0)):
        for scale in (2, 4):
            cid = st.begin_cell("eval", {"model": model, "scale": scale, "ds": {"name": "x"}}, 2)
            assert (
                st.begin_cell("eval", {"ds": {"name": "x"}, "scale": scale, "model": model}) == cid
            )
            assert st.add_row(cid, 0, "a", {"psnr": base + scale}, 0.1)
            assert not st.add_row(cid, 0, "a", {"psnr": 0.0}, 0.1)  # duplicate ignored
            st.add_row(cid, 1, "b", {"psnr": base + scale + 2}, 0.1)
    t = st.table(rows="model", cols="scale", value="psnr")
    assert t.row_keys == ["m1", "m2"] and t.col_keys == [2, 4]
    assert t.values == [[33.0, 35.0], [23.0, 25.0]]
    assert t.counts == [[2, 2], [2, 2]]
    rows = st.rows(where={"model": "m2", "scale": 4})
    assert [r["image"] for r in rows] == ["a", "b"] and rows[0]["ds.name"] == "x"
    with pytest.raises(InputError, match="no stored field 'modle'"):
        st.table(rows="modle", value="psnr")
    st.close()
    # persisted and readable by a new connection
    assert len(ResultStore(tmp_path / "s.sqlite").rows()) == 8


def test_run_cell_resumes(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    calls: list[str] = []

    def compute(skip: set[str]):
        for i, n in enumerate("abcd"):
            if n in skip:
                continue
            calls.append(n)
            if n == "c" and len(calls) == 3:
                raise KeyboardInterrupt  # crash half way, after a and b were stored
            yield CellRow(i, n, {"v": float(i)}, 0.0)

    with pytest.raises(KeyboardInterrupt):
        run_cell(st, "x", {"k": 1}, list("abcd"), compute, progress=False)
    res = run_cell(st, "x", {"k": 1}, list("abcd"), compute, progress=False)
    assert calls == ["a", "b", "c", "c", "d"]
    assert res.skipped == 2 and res.computed == 2
    assert [r["image"] for r in res.rows] == list("abcd")
    again = run_cell(st, "x", {"k": 1}, list("abcd"), compute, progress=False)
    assert again.computed == 0 and len(calls) == 5  # finished cell: nothing recomputed


def test_bad_store_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError):
        ResultStore(bad)
    with pytest.raises(StoreError, match="folder"):
        ResultStore(tmp_path)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(StoreError, match="schema 99"):
        ResultStore(other)


def test_infinite_metrics_roundtrip(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    cid = st.begin_cell("e", {"k": 1})
    st.add_row(cid, 0, "same", {"psnr": float("inf")}, 0.0)
    assert st.cell_rows(cid)[0]["psnr"] == float("inf")
    assert st.table(rows="k", value="psnr").to_dict()["values"] == [["inf"]]
