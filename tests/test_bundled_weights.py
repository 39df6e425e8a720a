"""The bundled demo weights: small, documented, and better than bicubic on held-out images."""

from __future__ import annotations

import pytest
import torch

from advsr.data import open_dataset
from advsr.imaging import quantize
from advsr.metrics import psnr
from advsr.models.sr import SR_MODELS, bundled_training, create_sr_model, weights_dir

BUNDLED = [(n, s) for n in SR_MODELS.names() for s in SR_MODELS.get(n).bundled]


def test_bundled_files_are_small_and_documented() -> None:
    files = sorted(weights_dir().glob("*.safetensors"))
    from advsr.models.classifiers import CLASSIFIERS

    sr = {SR_MODELS.get(n).bundled[s] for n, s in BUNDLED}
    clf = {CLASSIFIERS.get(n).bundled for n in CLASSIFIERS.names()} - {None}
    assert {f.name for f in files} == sr | clf
    assert sum(f.stat().st_size for f in files) <= 3 * 2**20
    readme = (weights_dir() / "README.md").read_text()
    for f in files:
        assert f.name in readme


@pytest.mark.parametrize(("name", "scale"), BUNDLED)
def test_bundled_model_beats_bicubic_on_held_out_images(name: str, scale: int) -> None:
    train = bundled_training(name, scale)
    assert train["data"] == "samples" and train["scale"] == scale
    held_out = train["holdout"]
    assert held_out, "bundled weights must keep images out of training"
    ds = open_dataset("samples", scale)
    model = create_sr_model(name, scale)
    bicubic = create_sr_model("bicubic", scale)
    gains = []
    for n in held_out:
        pair = ds[ds.names().index(n)]
        with torch.no_grad():
            ours = psnr(quantize(model(pair.lr)), pair.hr, crop_border=scale, y_channel=True)
            base = psnr(quantize(bicubic(pair.lr)), pair.hr, crop_border=scale, y_channel=True)
        gains.append(float(ours - base))
    assert sum(gains) / len(gains) > 0, gains
