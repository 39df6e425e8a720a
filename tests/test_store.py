"""Result store: idempotent cells keyed by identity, rows keyed by item, finished only when
complete, pivots that never mix cells, artefacts, schema and file errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advsr.engine.cell import CellRow, Item, Plan
from advsr.engine.driver import run_cells, run_plans
from advsr.engine.store import ResultStore, cell_id_of
from advsr.engine.tables import label_value, store_table
from advsr.errors import InputError, StoreError
from advsr.experiments.eval_sr import EVAL_SR, EvalSRConfig


def test_cell_id_is_canonical() -> None:
    assert cell_id_of("e", {"a": 1, "b": [1, 2]}) == cell_id_of("e", {"b": [1, 2], "a": 1})
    assert cell_id_of("e", {"a": 1}) != cell_id_of("e", {"a": 2})
    assert cell_id_of("e", {"a": 1}) != cell_id_of("f", {"a": 1})
    with pytest.raises(InputError):
        cell_id_of("e", {"a": object()})


def test_rows_written_once_finished_only_when_complete(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    assert st._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cid = st.begin_cell("eval", {"model": "m", "scale": 2}, ["a.png", "a.bmp"])
    assert st.begin_cell("eval", {"scale": 2, "model": "m"}, ["a.png", "a.bmp"]) == cid
    assert st.add_row(cid, 0, "a.png", "a.png", {"psnr": 30.0}, 0.1)
    assert not st.add_row(cid, 0, "a.png", "a.png", {"psnr": 0.0}, 0.1)  # stored once
    assert not st.finish_cell(cid) and not st.is_finished(cid)  # a.bmp is missing
    assert st.add_row(cid, 1, "a.bmp", "a.bmp", {"psnr": 20.0}, 0.1)  # same stem, own row
    assert st.finish_cell(cid) and st.is_finished(cid)
    assert [r["key"] for r in st.cell_rows(cid)] == ["a.png", "a.bmp"]
    with pytest.raises(StoreError, match="data changed"):
        st.begin_cell("eval", {"model": "m", "scale": 2}, ["a.png"])
    st.put_artifact(cid, "fig/a.png", b"\x89PNG", "image/png")
    assert st.artifacts(cid) == {"fig/a.png": ("image/png", b"\x89PNG")}
    st.close()
    assert len(ResultStore(tmp_path / "s.sqlite").rows()) == 2  # persisted


def _plan(calls: list[str], crash_at: str | None = None) -> Plan:
    items = [Item(k, k) for k in "abcd"]

    def compute(skip: set[str]):
        for i, it in enumerate(items):
            if it.key in skip:
                continue
            calls.append(it.key)
            if it.key == crash_at and calls.count(it.key) == 1:
                raise KeyboardInterrupt  # crash half way, after a and b were stored
            yield CellRow(i, it.key, it.name, {"v": float(i)}, 0.0)

    cfg = EvalSRConfig()
    return Plan(cfg, {"k": 1}, items, compute, "test")


def test_driver_resumes_inside_a_cell(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_plans([(EVAL_SR, _plan(calls, crash_at="c"))], st, progress=False)
    (res,) = run_plans([(EVAL_SR, _plan(calls, crash_at="c"))], st, progress=False)
    assert calls == ["a", "b", "c", "c", "d"]
    assert res.from_store == 2 and res.computed == 2 and res.expected == 4
    assert [r["key"] for r in res.rows] == list("abcd")
    (again,) = run_plans([(EVAL_SR, _plan(calls))], st, progress=False)
    assert again.computed == 0 and len(calls) == 5  # finished cell: nothing recomputed


def test_bad_store_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError):
        ResultStore(bad)
    with pytest.raises(StoreError, match="folder"):
        ResultStore(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "no" / "such" / "x.sqlite")
    assert not (tmp_path / "no").exists()  # nothing created on the way
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(StoreError, match="schema 99"):
        ResultStore(other)


def test_a_schema_1_store_gives_one_clear_line(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    con.execute("CREATE TABLE cells (cell_id TEXT PRIMARY KEY, experiment TEXT)")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema 1; this advsr reads schema 2"):
        ResultStore(old)


def test_infinite_metrics_roundtrip(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    cid = st.begin_cell("e", {"k": 1}, ["same"])
    st.add_row(cid, 0, "same", "same", {"psnr": float("inf"), "curve": [1.0, float("nan")]}, 0)
    row = st.cell_rows(cid)[0]
    assert row["psnr"] == float("inf") and row["curve"][0] == 1.0
    assert store_table(st, rows="k", value="psnr").to_dict()["values"] == [["inf"]]


def test_pivot_never_mixes_cells_whose_settings_differ(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    runs = run_cells(
        [
            ("eval-sr", {"scale": 4, "hr_crop": 32}),
            ("eval-sr", {"scale": 4, "hr_crop": 32, "y_channel": False, "crop_border": 0}),
            ("eval-sr", {"scale": 2, "hr_crop": 32}),
        ],
        st,
        progress=False,
    )
    t = store_table(st, rows="model", cols="scale", value="psnr")
    assert t.split_by == ["crop_border", "y_channel"]
    # three rows (border 4 / Y, border 0 / RGB, border 2 / Y); no entry averages two cells
    assert len(t.row_keys) == 3 and all(n in (0, 8) for row in t.counts for n in row)
    y_row = t.row_keys.index(("bicubic", 4, True))
    assert t.values[y_row][t.col_keys.index(4)] == pytest.approx(runs[0].mean["psnr"])
    rgb_row = t.row_keys.index(("bicubic", 0, False))
    assert t.values[rgb_row][t.col_keys.index(4)] == pytest.approx(runs[1].mean["psnr"])
    assert "y_channel=False" in t.row_label(rgb_row)
    # a device (result-neutral) never splits a table
    run_cells([("eval-sr", {"scale": 2, "hr_crop": 32, "device": "cpu"})], st, progress=False)
    assert len(st.cells()) == 3
    assert label_value("eps", 8 / 255) == "8/255" and label_value("eps", 0.5) == "127.5/255"


def _image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)


def test_two_files_with_one_stem_are_two_rows(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    for i, name in enumerate(("img_1.png", "img_3.png", "img_3.bmp")):
        _image(hr / name, i)
    st = ResultStore(tmp_path / "s.sqlite")
    (res,) = run_cells([("eval-sr", {"data": str(hr), "scale": 2})], st, progress=False)
    assert (res.expected, res.stored) == (3, 3) and res.finished
    assert [r["image"] for r in res.rows] == ["img_1", "img_3.bmp", "img_3.png"]
    paired = tmp_path / "paired"
    (paired / "HR").mkdir(parents=True)
    (paired / "LR_bicubic" / "X2").mkdir(parents=True)
    Image.new("RGB", (24, 24)).save(paired / "HR" / "a.png")
    Image.new("RGB", (24, 24)).save(paired / "HR" / "a.bmp")
    Image.new("RGB", (12, 12)).save(paired / "LR_bicubic" / "X2" / "a.png")
    (res2,) = run_cells([("eval-sr", {"data": str(paired), "scale": 2})], st, progress=False)
    assert (res2.expected, res2.stored) == (2, 2)


def test_labelled_folder_with_one_stem_twice(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    for i, name in enumerate(("img_1.png", "img_3.png", "img_3.bmp")):
        _image(folder / name, i)
    st = ResultStore(tmp_path / "s.sqlite")
    (res,) = run_cells(
        [("attack-clf", {"data": str(folder), "attack": "fgsm", "eps": 0.1})], st, progress=False
    )
    assert (res.expected, res.stored) == (3, 3)
    assert json.loads(json.dumps(res.brief()))["stored"] == 3
