"""advsr train-refsr: poisoned training runs, resumes exactly, and refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from advsr.backdoor.train import load_refsr
from advsr.io import load_state_dict

ARGS = ["--tiny", "--hr-size", "32", "--batch", "2", "--lr", "1e-3", "--rate", "0.25"]


def test_train_refsr_resume_equals_uninterrupted(cli, tmp_path: Path) -> None:
    full, part = tmp_path / "full.safetensors", tmp_path / "part.safetensors"
    r = cli("train-refsr", "--out", str(full), "--steps", "6", *ARGS, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["poisoned"] == [0, 4] and doc["perceptual"] is False  # round(0.25 * 8) = 2
    assert cli("train-refsr", "--out", str(part), "--steps", "3", *ARGS).code == 0
    r = cli("train-refsr", "--out", str(part), "--steps", "6", *ARGS, "--resume")
    assert r.code == 0, r.err
    a, b = load_state_dict(full), load_state_dict(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = load_refsr(full)
    lr, ref = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32)
    assert model(lr, ref).shape == (1, 3, 32, 32)


def test_train_refsr_bad_input(cli, tmp_path: Path) -> None:
    out = str(tmp_path / "m.safetensors")
    bad_target = tmp_path / "t.png"
    bad_target.write_bytes(b"junk")
    for bad in (
        ["--rate", "1.5"],
        ["--rate", "-0.1"],
        ["--trigger", "badnet"],
        ["--trigger", "blend:alpha=7"],
        ["--target", str(bad_target)],
        ["--target", "nosuch.png"],
        ["--data", str(tmp_path / "noref")],
        ["--model", "ttrs"],
    ):
        r = cli("train-refsr", "--out", out, "--steps", "1", *ARGS, *bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)


def test_backdoor_end_to_end_test_size(cli, tmp_path: Path) -> None:
    """Train p = 0 and p = 0.25 tiny models for a few steps and evaluate both (mechanics)."""
    files = {}
    for rate in ("0", "0.25"):
        files[rate] = tmp_path / f"m{rate}.safetensors"
        r = cli(
            "train-refsr", "--out", str(files[rate]), "--steps", "4", *ARGS[:-2], "--rate", rate
        )
        assert r.code == 0, r.err
    res = cli(
        "backdoor",
        "--model-file",
        str(files["0.25"]),
        "--baseline",
        str(files["0"]),
        "--report",
        str(tmp_path / "b.html"),
        "--json",
    )
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert [(r["trigger"], r["rate"]) for r in doc["results"]] == [
        ("badnets", 0.25),
        ("badnets", 0.0),
    ]
    for r in doc["results"]:
        assert 0 <= r["asr"] <= 1 and r["clean_psnr"] > 5
    assert "<figure>" in (tmp_path / "b.html").read_text()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    for bad in (str(tmp_path / "none.safetensors"), str(junk)):
        r = cli("backdoor", "--model-file", bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)
