"""Classifier zoo, labelled datasets, classifier training and the attack-clf command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advsr.data.labelled import digits, open_labelled
from advsr.errors import DatasetError, ModelLoadError
from advsr.models.classifiers import create_classifier, load_torchscript_classifier
from advsr.training.classifier import TrainClassifierConfig, train_classifier
from tests.conftest import SHARED


def test_bundled_digits_classifier_is_accurate() -> None:
    test = digits("test")
    assert len(test) == 360 and test.x.shape[1:] == (3, 32, 32)
    clf = create_classifier("digits-cnn")
    with torch.no_grad():
        acc = float((clf(test.x).argmax(1) == test.y).float().mean())
    assert acc >= 0.9
    assert set(digits("train").names).isdisjoint(test.names)


def test_training_is_deterministic(tmp_path: Path) -> None:
    cfg = dict(epochs=1, device="cpu", seed=1)
    a = train_classifier(
        TrainClassifierConfig(out=str(tmp_path / "a.safetensors"), **cfg), progress=False
    )
    b = train_classifier(
        TrainClassifierConfig(out=str(tmp_path / "b.safetensors"), **cfg), progress=False
    )
    assert a.val_accuracy == b.val_accuracy
    from advsr.io import load_state_dict

    sa, sb = load_state_dict(a.out), load_state_dict(b.out)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_labelled_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                tmp_path / "tree" / cls / f"{i}.png"
            )
    d = open_labelled(tmp_path / "tree")
    assert d.classes == ["cat", "dog"] and d.y.tolist() == [0, 0, 1, 1]
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, lab in enumerate((3, 1)):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            flat / f"img_{i:02d}_{lab}.png"
        )
    assert open_labelled(flat).y.tolist() == [3, 1]
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(flat / "nolabel.png")
    with pytest.raises(DatasetError, match="no label"):
        open_labelled(flat)
    assert len(open_labelled(flat, pattern="img_*")) == 2
    with pytest.raises(DatasetError):
        open_labelled(tmp_path / "missing")


def test_torchscript_classifier(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    torch.jit.script(net).save(str(tmp_path / "m.pt"))
    clf = load_torchscript_classifier(tmp_path / "m.pt", num_classes=3)
    assert clf(torch.rand(2, 3, 4, 4)).shape == (2, 3)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="not a TorchScript"):
        load_torchscript_classifier(tmp_path / "junk.pt", num_classes=3)


def test_attack_clf_cli(cli) -> None:
    res = cli(
        "attack-clf",
        "--attack",
        "pgd",
        "--attack",
        "deepfool",
        "--eps",
        "16/255",
        "--limit",
        "40",
        "--json",
    )
    assert res.code == 0, res.err
    rows = {r["attack"]: r for r in json.loads(res.out)["results"]}
    assert rows["pgd"]["clean_accuracy"] >= 0.85
    assert rows["pgd"]["robust_accuracy"] < rows["pgd"]["clean_accuracy"]
    assert rows["pgd"]["linf_median"] <= 16 / 255 + 1e-6
    assert rows["deepfool"]["fooling_rate"] >= 0.9 and rows["deepfool"]["eps"] is None
    cw = cli("attack-clf", "--loss", "cw", "--kappa", "2", "--eps", "16/255", "--limit", "40")
    assert cw.code == 0 and "pgd" in cw.out, cw.err
    for args in (
        ["--attack", "pdg"],
        ["--eps", "-1"],
        ["--steps", "0"],
        ["--data", "nosuchset"],
        ["--model", "resnet20-cifar10", "--weights", "x.th"],
        ["--loss", "hinge"],
        ["--kappa", "-1"],
    ):
        r = cli("attack-clf", "--limit", "4", *args)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (args, r.err)


@pytest.mark.skipif(not (SHARED / "cifar10").is_dir(), reason="../shared/data is absent")
def test_official_cifar_resnets_on_foolbox_pngs() -> None:
    data = open_labelled(SHARED / "samples_foolbox", pattern="cifar10_*")
    for depth in (20, 32, 44, 56):
        w = next((SHARED / "cifar10" / "resnet_weights").glob(f"resnet{depth}-*.th"))
        clf = create_classifier(f"resnet{depth}-cifar10", w)
        with torch.no_grad():
            correct = int((clf(data.x).argmax(1) == data.y).sum())
        assert correct >= 19, (depth, correct)


def test_per_class_selection(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png"
            )
    d = open_labelled(tmp_path, per_class=2)
    assert d.y.tolist() == [0, 0, 1, 1] and d.names == ["a/0", "a/1", "b/0", "b/1"]
