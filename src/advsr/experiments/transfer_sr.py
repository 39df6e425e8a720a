"""The ``transfer-sr`` experiment: attacks crafted on one SR model, measured on others.

One cell per source model: each image is attacked on the source (basic attack), then every
target model's SR PSNR ``f_t(X_adv)`` vs ``f_t(X0)`` is measured (row metrics
``sr_psnr@<target>``). :func:`transfer_matrix` turns the cells into the source x target
matrix of Choi et al.'s Figure 4.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from advsr.attacks._loop import eval_mode
from advsr.attacks.sr import DEFAULT_REFERENCE
from advsr.data import SRDataset, open_dataset
from advsr.devices import resolve_device
from advsr.errors import InputError
from advsr.experiments.attack_sr import attack_image
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import validate
from advsr.experiments.store import ResultStore
from advsr.io import file_sha256
from advsr.metrics import psnr
from advsr.models.sr import create_sr_model

__all__ = ["TransferSRConfig", "transfer_matrix", "transfer_sr"]

EXPERIMENT = "transfer-sr"


class TransferSRConfig(BaseModel):
    """One source model against a list of targets (weights by model name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    targets: list[str] = Field(min_length=1)
    weights: dict[str, str] = Field(default_factory=dict)
    data: str = "samples"
    scale: int = Field(4, ge=1)
    hr_crop: int | None = Field(None, ge=1)
    alpha: float = Field(8 / 255, ge=0.0, le=1.0)
    steps: int = Field(50, ge=1)
    reference: str = DEFAULT_REFERENCE
    random_start: bool = False
    seed: int = 0
    device: str = "auto"


def _rows(
    source: torch.nn.Module,
    targets: dict[str, torch.nn.Module],
    dataset: SRDataset,
    cfg: TransferSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[CellRow]:
    for i, name in enumerate(dataset.names()):
        if name in skip:
            continue
        t0 = time.perf_counter()
        pair = dataset[i]
        lr, hr = pair.lr.to(device), pair.hr.to(device)
        res = attack_image(source, lr, hr, cfg, i)
        metrics: dict[str, Any] = {"lr_psnr": float(psnr(res.x_adv, lr)[0])}
        for tname, tm in targets.items():
            with eval_mode(tm), torch.no_grad():
                metrics[f"sr_psnr@{tname}"] = float(psnr(tm(res.x_adv), tm(lr))[0])
        yield CellRow(idx=i, image=name, metrics=metrics, seconds=time.perf_counter() - t0)


def transfer_sr(
    cfg: TransferSRConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellResult:
    """Run one source's cell (rows hold ``lr_psnr`` and ``sr_psnr@<target>``)."""
    if not isinstance(cfg, TransferSRConfig):
        cfg = validate(TransferSRConfig, cfg)
    unknown = set(cfg.weights) - {cfg.source, *cfg.targets}
    if unknown:
        raise InputError(f"weights given for models not in the run: {', '.join(sorted(unknown))}")
    device = resolve_device(cfg.device)
    dataset = open_dataset(cfg.data, cfg.scale, hr_crop=cfg.hr_crop)
    models = {
        n: create_sr_model(n, cfg.scale, cfg.weights.get(n)).to(device)
        for n in dict.fromkeys([cfg.source, *cfg.targets])
    }
    config = {
        **cfg.model_dump(exclude={"weights", "device", "data"}),
        "weights_sha256": {n: file_sha256(w) for n, w in sorted(cfg.weights.items())},
        "dataset": dataset.identity(),
    }
    res = run_cell(
        store,
        EXPERIMENT,
        config,
        dataset.names(),
        lambda skip: _rows(
            models[cfg.source], {t: models[t] for t in cfg.targets}, dataset, cfg, skip, device
        ),
        description=f"transfer from {cfg.source}",
        progress=progress,
    )
    return res


def transfer_matrix(runs: Mapping[str, CellResult], targets: list[str]) -> list[list[float | None]]:
    """``matrix[i][j]`` = mean SR PSNR on target j of attacks crafted on source i."""
    return [[run.mean.get(f"sr_psnr@{t}") for t in targets] for run in runs.values()]
