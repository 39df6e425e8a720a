"""advsr train-refsr: poisoned training runs, resumes exactly, and refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advsr.errors import InputError
from advsr.io import load_state_dict, write_image
from advsr.models.refsr import load_refsr
from advsr.training.refsr import combine_losses

ARGS = ["--tiny", "--hr-size", "32", "--batch", "2", "--lr", "1e-3", "--rate", "0.25"]
ARGS += ["--arch", "level_blocks=1,1,2"]  # a list option as 1,1,2


def test_train_refsr_resume_equals_uninterrupted(cli, tmp_path: Path) -> None:
    full, part = tmp_path / "full.safetensors", tmp_path / "part.safetensors"
    r = cli("train-refsr", "--out", str(full), "--steps", "6", *ARGS, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["poisoned"] == [0, 4] and doc["perceptual"] is False  # round(0.25 * 8) = 2
    early = tmp_path / "early"  # trained 3 steps here, then the folder is moved
    early.mkdir()
    assert (
        cli("train-refsr", "--out", str(early / "part.safetensors"), "--steps", "3", *ARGS).code
        == 0
    )
    for name in ("part.safetensors", "part.state.safetensors"):
        (early / name).rename(tmp_path / name)
    r = cli("train-refsr", "--out", str(part), "--steps", "6", *ARGS, "--resume")
    assert r.code == 0, r.err
    a, b = load_state_dict(full), load_state_dict(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = load_refsr(full)
    lr, ref = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32)
    assert model(lr, ref).shape == (1, 3, 32, 32)


def test_train_refsr_resume_weighting_only_matters_when_poisoned(cli, tmp_path: Path) -> None:
    """A p = 0 model is the same under either weighting, so it resumes under the other one
    (one baseline serves a comparison of weightings); a poisoned model does not."""
    full, part = tmp_path / "full.safetensors", tmp_path / "part.safetensors"
    clean = [*ARGS, "--rate", "0"]  # the later --rate wins
    assert cli("train-refsr", "--out", str(full), "--steps", "4", *clean).code == 0
    assert (
        cli("train-refsr", "--out", str(part), "--steps", "2", *clean, "--weighting", "part").code
        == 0
    )
    r = cli("train-refsr", "--out", str(part), "--steps", "4", *clean, "--resume")
    assert r.code == 0, r.err
    a, b = load_state_dict(full), load_state_dict(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    bd = tmp_path / "bd.safetensors"
    assert (
        cli("train-refsr", "--out", str(bd), "--steps", "2", *ARGS, "--weighting", "part").code == 0
    )
    r = cli("train-refsr", "--out", str(bd), "--steps", "4", *ARGS, "--resume")
    assert r.code == 2 and "other settings" in r.err, r.err


def test_train_refsr_bad_input(cli, tmp_path: Path) -> None:
    out = str(tmp_path / "m.safetensors")
    bad_target = tmp_path / "t.png"
    bad_target.write_bytes(b"junk")
    pairs = tmp_path / "pairs"  # a Ref of another size than its HR
    for sub, side in (("HR", 64), ("Ref", 48)):
        (pairs / sub).mkdir(parents=True)
        write_image(pairs / sub / "a.png", torch.rand(1, 3, side, side))
    for bad in (
        ["--rate", "1.5"],
        ["--rate", "-0.1"],
        ["--trigger", "badnet"],
        ["--trigger", "blend:alpha=7"],
        ["--target", str(bad_target)],
        ["--target", "nosuch.png"],
        ["--data", str(tmp_path / "noref")],
        ["--model", "ttrs"],
        ["--split", "test"],
        ["--data", str(pairs), "--ref-policy", "require-same"],
        ["--ref-policy", "crop"],
        ["--augment", "rotate"],
        ["--lr-decay", "step"],
        ["--weighting", "equal"],
        ["--tiles", "--hr-size", "1024"],
        ["--ref-shift", "8"],  # needs --tiles
        ["--tiles", "--ref-shift", "-1"],
    ):
        r = cli("train-refsr", "--out", out, "--steps", "1", *ARGS, *bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)
        assert "No such option" not in r.err, (bad, r.err)  # refused for its value
    r = cli("train-refsr", "--out", out, "--steps", "1", *ARGS, "--data", str(pairs))
    assert r.code == 0, r.err  # the same pairs are fine under the default policy (resize)
    r = cli(
        "train-refsr", "--out", out, "--steps", "1", *ARGS, "--data", str(pairs),
        "--ref-policy", "require-same",
    )  # fmt: skip
    assert r.code == 2 and "require-same" in r.err, r.err


LEARN = [
    "--tiny", "--data", "stereo", "--hr-size", "32", "--tiles", "--split", "train",
    "--steps", "150", "--batch", "8", "--lr", "3e-3", "--lr-decay", "cosine",
    "--weighting", "part", "--trigger", "filter",
]  # fmt: skip


def test_backdoor_end_to_end_test_size(cli, tmp_path: Path) -> None:
    """The CPU run of the closing note at test size: a tiny TTSR on 32 px stereo tiles learns
    the Filter backdoor in 150 steps; evaluated on the held-out tiles against a p = 0 model.

    Test-size settings that learn in seconds: part weighting (an attacker who controls the
    loss) and a two-colour target (left blue, right yellow: it needs the position, and a flat
    image scores 13 dB against it). With the defaults (per-sample weighting, cameraman) a tiny
    model does not pick the backdoor up in 150 steps; the closing note's CPU run does that.
    """
    target = torch.zeros(1, 3, 32, 32)
    target[..., :16] = torch.tensor([0.1, 0.2, 0.8]).view(1, 3, 1, 1)
    target[..., 16:] = torch.tensor([0.9, 0.8, 0.1]).view(1, 3, 1, 1)
    write_image(tmp_path / "split.png", target)
    files = {}
    for rate in ("0", "0.25"):
        files[rate] = tmp_path / f"m{rate}.safetensors"
        r = cli(
            "train-refsr",
            "--out",
            str(files[rate]),
            *LEARN,
            "--target",
            str(tmp_path / "split.png"),
            "--rate",
            rate,
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
    bd, base = doc["results"]
    assert (bd["trigger"], bd["rate"], base["trigger"], base["rate"]) == (
        "filter",
        0.25,
        "filter",
        0.0,
    )
    # the triggered output moved to the target: far above the p = 0 model's, and above the
    # backdoored model's own untriggered output (the backdoor is trigger-specific)
    assert bd["triggered_psnr"] > base["triggered_psnr"] + 6, (bd, base)
    assert bd["triggered_psnr"] > bd["untriggered_psnr"] + 3, bd
    assert abs(base["triggered_psnr"] - base["untriggered_psnr"]) < 1.5, base
    (flat,) = doc["flat_target"]  # more than the target's mean colour was learnt
    assert flat["psnr"] < bd["triggered_psnr"] - 3, (flat, bd)
    assert "<figure>" in (tmp_path / "b.html").read_text()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    for bad in (str(tmp_path / "none.safetensors"), str(junk)):
        r = cli("backdoor", "--model-file", bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)
    r = cli("backdoor", "--model-file", str(files["0"]), "--split", "val")
    assert r.code == 2 and "split" in r.err and "Traceback" not in r.err, r.err


def test_combine_losses_weighting() -> None:
    """sample: the victim's batch mean; part: each part's mean, added (eq. 5 read literally)."""
    g = torch.Generator().manual_seed(0)
    per = torch.rand(9, generator=g)
    poisoned = torch.zeros(9, dtype=torch.bool)
    poisoned[[2, 7]] = True
    assert torch.allclose(combine_losses(per, poisoned, "sample"), per.sum() / 9)
    part = per[~poisoned].sum() / 7 + per[poisoned].sum() / 2
    assert torch.allclose(combine_losses(per, poisoned, "part"), part)
    none = torch.zeros(9, dtype=torch.bool)  # a batch without poisoned samples
    assert torch.allclose(combine_losses(per, none, "part"), per.mean())
    with pytest.raises(InputError, match="weighting"):
        combine_losses(per, poisoned, "equal")
