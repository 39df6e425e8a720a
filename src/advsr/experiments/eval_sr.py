"""The ``eval-sr`` experiment: fidelity (PSNR/SSIM) of an SR model on a dataset.

Example:
    >>> from advsr.experiments.store import ResultStore
    >>> cfg = EvalSRConfig(model="bicubic", data="samples", scale=4, hr_crop=64)
    >>> res = eval_sr(cfg, ResultStore(":memory:"), progress=False)
    >>> len(res.rows), sorted(res.mean)
    (8, ['psnr', 'ssim'])
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from advsr.data import SRDataset, open_dataset
from advsr.devices import resolve_device
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import validate
from advsr.experiments.store import ResultStore
from advsr.imaging.quantize import quantize
from advsr.io import file_sha256
from advsr.metrics import psnr, ssim
from advsr.models.sr import create_sr_model

__all__ = ["EvalSRConfig", "eval_sr", "eval_sr_rows"]

EXPERIMENT = "eval-sr"
METRICS_VERSION = 1  # bump when a metric's definition changes: old cells no longer match


class EvalSRConfig(BaseModel):
    """Settings of an ``eval-sr`` run (validated; unknown fields are refused).

    Attributes:
        model: zoo name.
        weights: weight file for models with parameters.
        data: dataset name or path.
        scale: SR factor.
        hr_crop: centre crop of generated HR images (quick runs); ``None`` keeps them whole.
        quantize: round the SR output to 8 bits before measuring, as saving it would (the
            published tables measure 8-bit files).
        y_channel: measure on BT.601 luma (the SR convention); False measures RGB.
        crop_border: pixels cropped from each side; ``None`` means ``scale``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (not part of the cell id).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "bicubic"
    weights: str | None = None
    data: str = "samples"
    scale: int = Field(2, ge=1)
    hr_crop: int | None = Field(None, ge=1)
    quantize: bool = True
    y_channel: bool = True
    crop_border: int | None = Field(None, ge=0)
    device: str = "auto"


def cell_config(cfg: EvalSRConfig, dataset: SRDataset) -> dict[str, Any]:
    """The configuration that identifies an ``eval-sr`` cell in the store."""
    return {
        "model": cfg.model,
        "weights_sha256": file_sha256(cfg.weights) if cfg.weights else None,
        "dataset": dataset.identity(),
        "scale": cfg.scale,
        "hr_crop": cfg.hr_crop,
        "quantize": cfg.quantize,
        "y_channel": cfg.y_channel,
        "crop_border": cfg.scale if cfg.crop_border is None else cfg.crop_border,
        "metrics_version": METRICS_VERSION,
    }


def eval_sr_rows(
    model: torch.nn.Module,
    dataset: SRDataset,
    cfg: EvalSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[CellRow]:
    """The pure cell: PSNR/SSIM of ``model`` on every image not in ``skip``."""
    border = cfg.scale if cfg.crop_border is None else cfg.crop_border
    for i, name in enumerate(dataset.names()):
        if name in skip:
            continue
        t0 = time.perf_counter()
        pair = dataset[i]
        hr = pair.hr.to(device)
        with torch.no_grad():
            sr = model(pair.lr.to(device))
        if cfg.quantize:
            sr = quantize(sr)
        metrics = {
            "psnr": float(psnr(sr, hr, crop_border=border, y_channel=cfg.y_channel)[0]),
            "ssim": float(ssim(sr, hr, crop_border=border, y_channel=cfg.y_channel)[0]),
            "height": int(hr.shape[-2]),
            "width": int(hr.shape[-1]),
        }
        yield CellRow(idx=i, image=name, metrics=metrics, seconds=time.perf_counter() - t0)


def eval_sr(
    cfg: EvalSRConfig | dict[str, Any],
    store: ResultStore,
    *,
    progress: bool | None = None,
) -> CellResult:
    """Evaluate an SR model's fidelity on a dataset, resuming from the store.

    Args:
        cfg: settings (a dict is validated into :class:`EvalSRConfig`).
        store: where rows go; a finished identical cell is read back without recomputing.
        progress: show a progress bar (``None``: when stderr is a terminal).

    Raises:
        AdvsrError: bad settings, unknown model or dataset, inconsistent data.
    """
    if not isinstance(cfg, EvalSRConfig):
        cfg = validate(EvalSRConfig, cfg)
    device = resolve_device(cfg.device)
    dataset = open_dataset(cfg.data, cfg.scale, hr_crop=cfg.hr_crop)
    model = create_sr_model(cfg.model, cfg.scale, cfg.weights).to(device)
    config = cell_config(cfg, dataset)
    res = run_cell(
        store,
        EXPERIMENT,
        config,
        dataset.names(),
        lambda skip: eval_sr_rows(model, dataset, cfg, skip, device),
        description=f"{cfg.model} x{cfg.scale}",
        progress=progress,
    )
    return res
