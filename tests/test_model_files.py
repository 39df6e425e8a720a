"""Every --model takes a zoo name or a model file: TorchScript, or a state_dict that fits a
zoo architecture (SR models and classifiers alike)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advsr.errors import ModelLoadError
from advsr.io import save_safetensors
from advsr.models.classifiers import create_classifier
from advsr.models.sr import create_sr_model


class _Nearest(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


def test_torchscript_sr_model_file(tmp_path: Path, cli) -> None:
    path = tmp_path / "up.pt"
    torch.jit.save(torch.jit.script(_Nearest()), str(path))
    model = create_sr_model(str(path), 2)
    assert model(torch.rand(1, 3, 5, 6)).shape == (1, 3, 10, 12)
    with pytest.raises(ModelLoadError, match="not an x3"):
        create_sr_model(str(path), 3)
    res = cli("eval-sr", "--model", str(path), "--hr-crop", "32", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["config"]["model"] == str(path)


def test_state_dict_file_finds_its_zoo_architecture(tmp_path: Path, cli) -> None:
    torch.manual_seed(0)
    ref = create_sr_model("edsr-baseline", 2, bundled=False)
    path = tmp_path / "mine.safetensors"
    save_safetensors(path, ref.state_dict())
    model = create_sr_model(str(path), 2)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    junk = tmp_path / "junk.safetensors"
    save_safetensors(junk, {"w": torch.zeros(3)})
    with pytest.raises(ModelLoadError, match="fits no SR architecture"):
        create_sr_model(str(junk), 2)
    res = cli("attack-sr", "--model", str(junk), "--scale", "2", "--hr-crop", "32")
    assert res.code == 2 and res.err.count("\n") == 1 and "fits no SR" in res.err


def test_classifier_files(tmp_path: Path, cli) -> None:
    torch.manual_seed(0)
    ref = create_classifier("resnet20-cifar10", bundled=False)
    path = tmp_path / "r20.safetensors"
    save_safetensors(path, ref.net.state_dict())
    clf = create_classifier(str(path))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(clf(x), ref(x))
    script = tmp_path / "digits.pt"
    torch.jit.save(
        torch.jit.trace(create_classifier("digits-cnn"), torch.rand(1, 3, 32, 32)), str(script)
    )
    res = cli("attack-clf", "--model", str(script), "--limit", "8", "--attack", "fgsm", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["results"][0]["clean_accuracy"] > 0.8
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    res = cli("attack-clf", "--model", str(bad), "--limit", "4")
    assert res.code == 2 and res.err.count("\n") == 1, res.err
