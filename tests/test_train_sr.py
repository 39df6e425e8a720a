"""SR training: deterministic with a seed, resume equals an uninterrupted run, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advsr.errors import InputError
from advsr.io import load_state_dict
from advsr.models.sr import create_sr_model
from advsr.training.sr import TrainSRConfig, train_sr

ARCH = {"n_resblocks": 1, "n_feats": 8}


def _cfg(out: Path, **kw) -> TrainSRConfig:
    base = dict(
        model="edsr-baseline",
        scale=2,
        out=str(out),
        arch=ARCH,
        patch=8,
        batch=2,
        steps=6,
        val_every=3,
        holdout=["chelsea"],
        lr=1e-3,
        seed=3,
        device="cpu",
    )
    base.update(kw)
    return TrainSRConfig(**base)


def test_seeded_runs_are_identical_and_resume_continues_exactly(tmp_path: Path) -> None:
    a = train_sr(_cfg(tmp_path / "a.safetensors"), progress=False)
    b = train_sr(_cfg(tmp_path / "b.safetensors"), progress=False)
    sa, sb = load_state_dict(a.out), load_state_dict(b.out)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.val_psnr == b.val_psnr and len(a.val_psnr) == 2
    # interrupted after the checkpoint at step 3, then resumed: same weights as uninterrupted

    def stop(step: int, _: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sr(_cfg(tmp_path / "c.safetensors"), progress=False, on_validate=stop)
    moved = tmp_path / "moved"  # the run folder moved before the resume
    moved.mkdir()
    for name in ("c.safetensors", "c.state.safetensors"):
        (tmp_path / name).rename(moved / name)
    c = train_sr(_cfg(moved / "c.safetensors", resume=True), progress=False)
    sc = load_state_dict(c.out)
    assert all(torch.equal(sa[k], sc[k]) for k in sa)
    # a different seed gives different weights
    d = train_sr(_cfg(tmp_path / "d.safetensors", seed=4), progress=False)
    assert any(not torch.equal(sa[k], load_state_dict(d.out)[k]) for k in sa)


def test_checkpoint_rebuilds_its_architecture(tmp_path: Path) -> None:
    res = train_sr(_cfg(tmp_path / "m.safetensors", steps=2, val_every=2), progress=False)
    model = create_sr_model("edsr-baseline", 2, res.out)  # options come from the metadata
    assert model.head[0].out_channels == 8
    with pytest.raises(Exception, match="trained for x2, not x4"):
        create_sr_model("edsr-baseline", 4, res.out)


def test_training_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="held-out images not in"):
        train_sr(_cfg(tmp_path / "x.safetensors", holdout=["nosuch"]), progress=False)
    with pytest.raises(InputError, match=r"\.safetensors"):
        train_sr(_cfg(tmp_path / "x.pth"), progress=False)
    with pytest.raises(InputError, match="no parameters"):
        train_sr(_cfg(tmp_path / "x.safetensors", model="bicubic", arch={}), progress=False)
    with pytest.raises(InputError, match="smaller than the LR patch"):
        train_sr(_cfg(tmp_path / "x.safetensors", patch=400), progress=False)
    train_sr(_cfg(tmp_path / "y.safetensors", steps=2, val_every=2), progress=False)
    with pytest.raises(InputError, match="other settings"):
        train_sr(_cfg(tmp_path / "y.safetensors", lr=0.5, resume=True), progress=False)


def test_train_cli_json(cli, tmp_path: Path) -> None:
    res = cli(
        "train-sr",
        "--model",
        "edsr-baseline",
        "--arch",
        "n_resblocks=1",
        "--arch",
        "n_feats=8",
        "--patch",
        "8",
        "--batch",
        "2",
        "--steps",
        "2",
        "--val-every",
        "2",
        "--holdout",
        "chelsea",
        "--out",
        str(tmp_path / "m.safetensors"),
        "--json",
    )
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["steps"] == 2 and len(doc["val_psnr"]) == 1 and doc["bicubic_val_psnr"] > 20
    bad = cli(
        "train-sr",
        "--model",
        "edsr-baseline",
        "--arch",
        "n_feat=8",
        "--out",
        str(tmp_path / "n.safetensors"),
    )
    assert bad.code == 2 and "no architecture option" in bad.err
