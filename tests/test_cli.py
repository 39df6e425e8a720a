"""The command line: JSON output, tables, one-line errors with exit 2, demo smoke, resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, SET5, needs_shared


def _one_line_error(res) -> None:
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res.err
    assert lines[0].startswith("advsr: error: ") or lines[0].startswith("Error"), res.err
    assert "Traceback" not in res.err + res.out


def test_demo_quick_json(cli, tmp_path) -> None:
    report = tmp_path / "report.html"
    res = cli("demo", "--quick", "--json", "--report", str(report))
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    models = ["bicubic", "demo-edsr", "demo-carn-m"]
    assert doc["held_out"] == ["chelsea", "china"]
    for m in models:  # clean fidelity: x2 is easier than x4 on the same images
        assert doc["fidelity"][m]["x2"]["psnr_all"] > doc["fidelity"][m]["x4"]["psnr_all"]
    atk = doc["attack"]
    assert atk["alphas"] == ["2/255", "8/255"]
    for m in models:  # a larger budget degrades more, in LR and in SR
        assert atk["lr_psnr"][m]["8/255"] < atk["lr_psnr"][m]["2/255"]
        assert atk["sr_psnr"][m]["8/255"] < atk["sr_psnr"][m]["2/255"]
    # the paper's first finding, even in the quick run: the deep models lose more in SR than
    # in LR, bicubic does not, and bicubic is the most robust
    for m in models[1:]:
        assert atk["sr_psnr"][m]["8/255"] < atk["lr_psnr"][m]["8/255"]
        assert atk["sr_psnr"][m]["8/255"] < atk["sr_psnr"]["bicubic"]["8/255"]
    assert atk["sr_psnr"]["bicubic"]["8/255"] > atk["lr_psnr"]["bicubic"]["8/255"]
    t = doc["transfer"]
    assert len(t["matrix"]) == 3 and all(len(r) == 3 for r in t["matrix"])
    html = report.read_text()
    assert "data:image/png;base64," in html and "Transferability" in html
    assert "<svg" in html and "SR PSNR under the basic attack" in html  # the paper's plot
    assert "<h2>Provenance</h2>" in html and "advsr demo --quick" in html
    again = json.loads(cli("demo", "--quick", "--json", "--report", str(report)).out)
    assert again["attack"] == atk and again["transfer"] == t


def test_tables_and_listings(cli) -> None:
    res = cli("eval-sr", "--data", "samples", "--scale", "4", "--hr-crop", "48")
    assert res.code == 0 and "astronaut" in res.out and "mean" in res.out
    assert "bicubic" in cli("results").out
    piv = json.loads(cli("results", "--rows", "image", "--value", "ssim", "--json").out)["table"]
    assert len(piv["row_keys"]) == 8
    assert "samples" in cli("datasets").out
    assert json.loads(cli("datasets", "--json").out)["datasets"][0]["name"] == "samples"
    assert json.loads(cli("models", "--json").out)["sr_models"][0]["name"] == "bicubic"


def test_rgb_and_float_options_change_the_numbers(cli) -> None:
    base = json.loads(cli("eval-sr", "--hr-crop", "48", "--json").out)["mean"]["psnr"]
    rgb = json.loads(cli("eval-sr", "--hr-crop", "48", "--rgb", "--json").out)
    flt = json.loads(cli("eval-sr", "--hr-crop", "48", "--float", "--json").out)
    assert rgb["metric"]["channel"] == "rgb" and rgb["mean"]["psnr"] != base
    assert flt["metric"]["quantized_8bit"] is False and flt["mean"]["psnr"] != base


def test_bad_input_one_line_exit_2(cli, tmp_path: Path) -> None:
    (tmp_path / "notimg.png").write_text("hello")
    good = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(good).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    (trunc / "t.png").write_bytes(data[: len(data) // 2])
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.fromarray(good[:3, :3]).save(tiny / "t.png")
    cases = [
        ["eval-sr", "--data", str(tmp_path / "missing")],
        ["eval-sr", "--data", str(tmp_path / "notimg.png")],
        ["eval-sr", "--data", str(trunc)],
        ["eval-sr", "--data", "sampels"],
        ["eval-sr", "--scale", "0"],
        ["eval-sr", "--scale", "-2"],
        ["eval-sr", "--data", str(tiny), "--scale", "4"],
        ["eval-sr", "--model", "edsrr"],
        ["eval-sr", "--hr-crop", "0"],
        ["eval-sr", "--device", "quantum"],
        ["results", "--store", str(tmp_path / "none.sqlite")],
        ["eval-sr", "--scale", "two"],
        ["frobnicate"],
    ]
    for args in cases:
        _one_line_error(cli(*args))
    cli("eval-sr", "--hr-crop", "32")
    _one_line_error(cli("results", "--rows", "nosuchparam"))
    _one_line_error(cli("results", "--where", "noequals"))


@needs_shared
def test_scale_mismatch_on_paired_folder(cli) -> None:
    res = cli("eval-sr", "--data", str(SET5 / "image_SRF_4"), "--scale", "7")
    _one_line_error(res)
    assert "fit scale 4" in res.err


@needs_shared
def test_set5_json_matches_published(cli) -> None:
    doc = json.loads(cli("eval-sr", "--data", str(SET5), "--scale", "4", "--json").out)
    assert len(doc["rows"]) == 5
    assert abs(doc["mean"]["psnr"] - 28.42) <= 0.02


def _big_folder(path: Path, n: int, size: int) -> None:
    path.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(np.roll(base, i, axis=0)).resize((size, size), Image.BICUBIC)
        img.save(path / f"img{i:02d}.png")


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """Kill eval-sr half way with SIGKILL, re-run: each image once, same table as a clean run."""
    data = tmp_path / "data"
    _big_folder(data, n=12, size=768)
    env = {**os.environ, "ADVSR_PROGRESS": "0", "PYTHONPATH": str(REPO / "src")}
    store = tmp_path / "killed.sqlite"
    args = [
        sys.executable,
        "-m",
        "advsr",
        "eval-sr",
        "--data",
        str(data),
        "--scale",
        "2",
        "--device",
        "cpu",
        "--json",
    ]
    proc = subprocess.Popen(
        [*args, "--store", str(store)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    n_rows = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                con = sqlite3.connect(store, timeout=1)
                n_rows = con.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                n_rows = 0
            if n_rows >= 2:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(store)
    partial = con.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
    con.close()
    assert 2 <= partial < 12, partial

    resumed = subprocess.run(
        [*args, "--store", str(store)], env=env, capture_output=True, text=True, check=True
    )
    clean = subprocess.run(
        [*args, "--store", str(tmp_path / "clean.sqlite")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    r, c = json.loads(resumed.stdout), json.loads(clean.stdout)
    assert r["from_store"] == partial and r["computed"] == 12 - partial
    strip = lambda rows: [{k: v for k, v in x.items() if not k.endswith("seconds")} for x in rows]  # noqa: E731
    assert strip(r["rows"]) == strip(c["rows"])
    assert r["mean"] == c["mean"]
    con = sqlite3.connect(store)
    counts = con.execute("SELECT image, COUNT(*) FROM rows GROUP BY image").fetchall()
    assert len(counts) == 12 and all(n == 1 for _, n in counts)
    assert con.execute("SELECT finished IS NOT NULL FROM cells").fetchone()[0] == 1
    con.close()


def test_no_traceback_from_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run(
        [sys.executable, "-m", "advsr", "eval-sr", "--data", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stdout == ""


def test_run_spec_file(cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'experiment = "eval-sr"\n[grid]\nscale = [2, 3]\n'
        '[settings]\nmodel = "bicubic"\ndata = "samples"\nhr_crop = 48\n'
    )
    res = cli("run", str(spec), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert [r["config"]["scale"] for r in doc["runs"]] == [2, 3]
    assert all(r["computed"] == 8 for r in doc["runs"])
    # the same cells through eval-sr are read back, not recomputed
    again = json.loads(cli("eval-sr", "--scale", "3", "--hr-crop", "48", "--json").out)
    assert again["computed"] == 0 and again["mean"] == doc["runs"][1]["mean"]
    table = cli("run", str(spec))
    assert table.code == 0 and "eval-sr: 2 cell(s)" in table.out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("experiment = [", "not valid TOML"),
        ('experiment = "eval-rs"\n', "did you mean 'eval-sr'"),
        ('experiment = "eval-sr"\n[settings]\nmodle = "x"\n', "modle"),
        ('experiment = "eval-sr"\n[grid]\nscale = []\n', "no values"),
        ('experiment = "eval-sr"\n[grid]\nscale = [2, -1]\n', "scale"),
        ('experiment = "eval-sr"\nfoo = 1\n', "foo"),
    ],
)
def test_bad_spec_files(cli, tmp_path: Path, text: str, message: str) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    res = cli("run", str(spec))
    _one_line_error(res)
    assert message in res.err


def test_missing_spec_file(cli, tmp_path: Path) -> None:
    _one_line_error(cli("run", str(tmp_path / "nope.toml")))


def test_progress_bar_path(cli, monkeypatch) -> None:
    monkeypatch.setenv("ADVSR_PROGRESS", "1")
    res = cli("eval-sr", "--hr-crop", "32", "--json")
    assert res.code == 0, res.err
    assert len(json.loads(res.out)["rows"]) == 8  # stdout stays one JSON document
