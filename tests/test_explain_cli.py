"""``advsr explain``: maps, CAMs and overlap metrics from the command line."""

from __future__ import annotations

import json
from pathlib import Path


def test_explain_cli(cli, tmp_path: Path) -> None:
    res = cli("explain", "--limit", "3", "--report", str(tmp_path / "e.html"), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert len(doc["per_image"]) == 3 and doc["threshold"] == 0.11
    for row in doc["per_image"]:
        assert 0.0 <= row["perturbed_fraction"] <= 1.0
        assert row["iou_outside"] is None or 0.0 <= row["iou_outside"] <= 1.0
    html = (tmp_path / "e.html").read_text()
    assert html.count("<figure>") == 3 * 6 and "<svg" in html  # Fig. 3 rows and curves
    for bad in (
        ["--layer", "net.nosuch"],
        ["--method", "cam"],
        ["--window", "box"],
        ["--attack", "pdg@8/255"],
        ["--limit", "0"],
    ):
        r = cli("explain", "--limit", "2", *bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)
    r = cli("explain", "--limit", "2", "--layer", "net.nosuch")
    assert "net.features" in r.err  # the valid layers are listed
