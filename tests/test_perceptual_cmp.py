"""``advsr perceptual``: fooling rate at matched quality (PGAP paper Tables II and III)."""

from __future__ import annotations

import json
from pathlib import Path

from advsr.experiments.perceptual_cmp import at_level


def test_at_level_interpolates_and_never_extrapolates() -> None:
    pts = [(0.999, 0.2), (0.99, 0.9), (0.995, 0.6)]
    assert abs(at_level(pts, 0.997) - 0.4) < 1e-9  # halfway between 0.995 and 0.999
    assert at_level(pts, 0.99) == 0.9
    assert at_level(pts, 0.9995) is None and at_level(pts, 0.98) is None
    assert at_level([], 0.5) is None


def test_perceptual_cli(cli, tmp_path: Path) -> None:
    store = str(tmp_path / "s.sqlite")
    args = [
        "perceptual",
        "--limit",
        "24",
        "--sweep",
        "fgsm=1/255,4/255,16/255",
        "--sweep",
        "fpgap=0.02,0.05,0.2",
        "--ssim-target",
        "0.99",
        "--store",
        store,
    ]
    res = cli(*args, "--report", str(tmp_path / "p.html"), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    for m in ("fgsm", "fpgap"):
        pts = doc["sweeps"][m]
        assert [p["images"] for p in pts] == [24, 24, 24]
        # a larger budget fools more and costs quality
        assert pts[0]["fooling_rate"] <= pts[-1]["fooling_rate"]
        assert pts[0]["ssim"] > pts[-1]["ssim"] and pts[0]["psnr"] > pts[-1]["psnr"]
    assert "<svg" in (tmp_path / "p.html").read_text()
    for bad in (
        ["--sweep", "fgsm"],
        ["--sweep", "deepfool=0.1"],
        ["--sweep", "fpgap=1.5"],
        ["--ssim-target", "2"],
    ):
        r = cli("perceptual", "--limit", "4", "--store", store, *bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)
