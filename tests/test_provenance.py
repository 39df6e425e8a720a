"""Every report says what produced it: version, commit, command line, config hash, data and
weights hashes, device, date."""

from __future__ import annotations

from pathlib import Path


def test_an_experiment_report_carries_its_provenance(cli, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = cli(
        "defend", "--attack", "fgsm@0.1", "--defense", "median:size=3x3", "--limit", "2",
        "--store", str(tmp_path / "s.sqlite"), "--report", str(out),
    )  # fmt: skip
    assert res.code == 0, res.err
    page = out.read_text()
    assert "<h2>Provenance</h2>" in page
    assert "advsr defend --attack fgsm@0.1" in page  # the command line
    assert "digits" in page and "sha256 " in page  # the dataset and the config hash
    # rebuilt later from the store alone: the same block, with that command
    again = tmp_path / "again.html"
    res = cli("report", "--experiment", "defend", "--store", str(tmp_path / "s.sqlite"),
              "--out", str(again))  # fmt: skip
    assert res.code == 0, res.err
    assert "advsr report --experiment defend" in again.read_text()


def test_cell_provenance_collects_datasets_and_weights() -> None:
    from types import SimpleNamespace as NS

    from advsr.provenance import of_cells

    cells = [
        NS(cell_id="b", config={"model": "carn-m", "device": "cpu"},
           identity={"data": {"name": "Set5", "sha256": "aa", "files": 5}, "weights": "ff"}),
        NS(cell_id="a", config={"model": "bicubic", "device": "cpu"},
           identity={"data": {"name": "samples", "sha256": "bb", "files": 8}}),
    ]  # fmt: skip
    p = of_cells(cells)
    assert p["data"] == {"spec": "Set5, samples", "sha256": "aa, bb", "files": 13}
    assert p["weights"] == {"carn-m": "ff", "bicubic": None}
    assert p["config_sha256"] == of_cells(list(reversed(cells)))["config_sha256"]
