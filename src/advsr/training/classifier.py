"""``advsr train-classifier``: cross-entropy training of a zoo classifier, deterministic.

Trains on a labelled dataset (default ``digits-train``), evaluates on another (default
``digits-test``) after every epoch, shuffles with an explicit generator, and writes the
network weights as safetensors (training settings and accuracy in the metadata).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from advsr.data.labelled import open_labelled
from advsr.devices import resolve_device
from advsr.errors import InputError
from advsr.io import save_safetensors
from advsr.progress import progress_bar
from advsr.settings import DATA, NEUTRAL, Settings

__all__ = ["TrainClassifierConfig", "TrainClassifierResult", "train_classifier"]


class TrainClassifierConfig(Settings):
    """Settings of a classifier training run (see the field docstrings)."""

    model: str = "digits-cnn"
    """Zoo classifier to train (see `advsr list classifiers`)."""
    out: Annotated[str, NEUTRAL]
    """Weights to write (.safetensors)."""
    data: Annotated[str, DATA] = "digits-train"
    """Labelled training set."""
    val: Annotated[str, DATA] = "digits-test"
    """Labelled validation set."""
    epochs: int = Field(40, ge=1, le=100_000)
    """Epochs."""
    batch: int = Field(64, ge=1, le=4_096)
    """Batch size."""
    lr: float = Field(2e-3, gt=0)
    """Adam learning rate."""
    seed: int = 0
    """Seed of all randomness."""
    device: Annotated[str, NEUTRAL] = "auto"
    """auto, cpu, cuda, cuda:N."""


@dataclass(frozen=True)
class TrainClassifierResult:
    """Where the weights went and the validation accuracy after each epoch."""

    out: Path
    val_accuracy: list[float]
    seconds: float


def train_classifier(
    cfg: TrainClassifierConfig, *, progress: bool | None = None
) -> TrainClassifierResult:
    """Train (see the module docstring).

    Raises:
        AdvsrError: bad settings, unknown model or dataset, labels outside the model's classes.
    """
    from advsr.models.classifiers import create_classifier

    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out must be a .safetensors file, got {out.name!r}")
    device = resolve_device(cfg.device)
    train = open_labelled(cfg.data)
    val = open_labelled(cfg.val)
    torch.manual_seed(cfg.seed)
    clf = create_classifier(cfg.model, bundled=False).to(device)
    if int(train.y.max()) >= clf.num_classes:
        raise InputError(
            f"{cfg.data} has labels beyond the {clf.num_classes} classes of {cfg.model}"
        )
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(clf.parameters(), lr=cfg.lr)
    x, y = train.x.to(device), train.y.to(device)
    accs: list[float] = []
    t0 = time.perf_counter()
    n = len(train)
    with progress_bar(cfg.epochs, f"train {cfg.model}", progress, unit="epochs") as bar:
        for _ in range(cfg.epochs):
            clf.train()
            perm = torch.randperm(n, generator=g).to(device)
            for i in range(0, n, cfg.batch):
                idx = perm[i : i + cfg.batch]
                loss = F.cross_entropy(clf(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            clf.eval()
            with torch.no_grad():
                pred = clf(val.x.to(device)).argmax(1).cpu()
            accs.append(float((pred == val.y).float().mean()))
            bar.note(f"val acc {accs[-1]:.3f}")
            bar.advance()
    meta = {
        "advsr_classifier": cfg.model,
        "advsr_train": cfg.model_dump_json(exclude={"device"}),
        "advsr_val_accuracy": json.dumps(accs[-1]),
    }
    save_safetensors(out, clf.net.state_dict(), meta)
    return TrainClassifierResult(out, accs, time.perf_counter() - t0)
