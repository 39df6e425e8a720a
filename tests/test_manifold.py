"""The manifold experiment: detector on frozen features, purified images, PCA, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from advsr.experiments.manifold import penultimate_features, run_manifold


class _MeanFeatures(nn.Module):
    """Penultimate features = per-channel means; the head is a fixed linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def test_detector_separates_and_recognises_purified_images() -> None:
    g = torch.Generator().manual_seed(0)
    x = 0.4 * torch.rand(40, 3, 8, 8, generator=g)  # "clean": dark
    x_adv = (x + 0.5).clamp(0, 1)  # "adversarial": bright, trivially separable
    purified = x.clone()  # a perfect purification maps them back
    model = _MeanFeatures()
    f = penultimate_features(model, x)
    assert torch.allclose(f, x.mean(dim=(2, 3)))
    res = run_manifold(model, x, x_adv, purified, epochs=60, hidden=32)
    assert res.test_accuracy > 0.95
    assert res.purified_called_clean > 0.9 and res.adversarial_called_clean < 0.1
    assert 0 < sum(res.explained_variance) <= 1 + 1e-9
    assert set(res.points) == {"clean", "adversarial", "purified"}
    again = run_manifold(model, x, x_adv, purified, epochs=60, hidden=32)
    assert again.as_dict() == res.as_dict()  # seeded


def test_manifold_cli(cli, tmp_path: Path) -> None:
    args = ["manifold", "--limit", "40", "--attack", "fgsm@16/255", "--epochs", "10"]
    res = cli(*args, "--report", str(tmp_path / "m.html"), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    for key in ("test_accuracy", "clean_called_clean", "purified_called_clean"):
        assert 0.0 <= doc[key] <= 1.0
    assert "<svg" in (tmp_path / "m.html").read_text()
    for bad in (["--epochs", "0"], ["--defense", "nosuch"], ["--attack", "pdg"]):
        r = cli(*args, *bad)
        assert r.code == 2 and r.err.count("\n") == 1, (bad, r.err)
