"""The ``eval-sr`` experiment: fidelity (PSNR/SSIM) of an SR model on a dataset.

Example:
    >>> from advsr.engine.store import ResultStore
    >>> res = eval_sr({"model": "bicubic", "data": "samples", "scale": 4, "hr_crop": 64},
    ...               ResultStore(":memory:"), progress=False)
    >>> len(res.rows), sorted(res.mean)
    (8, ['psnr', 'ssim'])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from advsr.engine.cell import (
    SEEDED,
    CellConfig,
    CellRun,
    Experiment,
    Item,
    Plan,
    cell_identity,
    register_experiment,
    timed,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.imaging.quantize import quantize
from advsr.metrics import psnr, ssim
from advsr.report import ReportTable, fmt
from advsr.settings import DATA, MODEL, WEIGHTS

__all__ = ["EvalSRConfig", "eval_sr"]

NAME = "eval-sr"


class EvalSRConfig(CellConfig):
    """Settings of an ``eval-sr`` cell (see the field docstrings)."""

    model: Annotated[str, MODEL] = "bicubic"
    """SR model: a zoo name (`advsr list models`) or a model file."""
    weights: Annotated[str | None, WEIGHTS] = None
    """Weight file of a zoo model with parameters."""
    data: Annotated[str, DATA] = "samples"
    """Dataset name or path (see `advsr list datasets`)."""
    scale: int = Field(2, ge=1)
    """SR factor."""
    hr_crop: int | None = Field(None, ge=1)
    """Centre-crop HR images to N pixels a side (quick runs; HR-only datasets)."""
    quantize: bool = True
    """Round the SR output to 8 bits before measuring, as published tables do."""
    y_channel: bool = True
    """Measure on BT.601 luma (the SR convention); off measures RGB."""
    crop_border: int | None = Field(None, ge=0)
    """Pixels cropped from each border (default: the scale)."""
    seed: Annotated[int, SEEDED] = 0
    """Seed of an untrained model's initialisation (with random_weights)."""
    random_weights: bool = False
    """Run a zoo model that has no weights untrained, initialised from the seed (refused
    without it); every table row of such a cell says "random weights"."""
    gray: Literal["rgb", "keep"] = "rgb"
    """Grayscale images: accepted for symmetry with attack-sr, changes nothing here (a gray
    image is measured as its three equal channels either way)."""

    identity_defaults: ClassVar[dict[str, Any]] = {**CellConfig.identity_defaults, "gray": "rgb"}

    @model_validator(mode="before")
    @classmethod
    def _border(cls, data: Any) -> Any:
        """``crop_border`` None means the scale (one identity for both spellings)."""
        if isinstance(data, dict) and data.get("crop_border") is None:
            data = {**data, "crop_border": data.get("scale", 2)}
        return data


def _plan(cfg: EvalSRConfig, ctx: Context) -> Plan:
    dataset = ctx.sr_dataset(cfg.data, cfg.scale, cfg.hr_crop, use="eval-sr", gray=cfg.gray)
    device = ctx.device(cfg.device)
    ctx.sr_model(
        cfg.model, cfg.scale, cfg.weights, device, cfg.init_seed
    )  # bad names/weights fail now
    items = [Item(k, n) for k, n in zip(dataset.keys(), dataset.names(), strict=True)]
    _check_ssim_fits(cfg, dataset)

    def compute(skip: set[str]) -> Iterator[Any]:
        model = ctx.sr_model(cfg.model, cfg.scale, cfg.weights, device, cfg.init_seed)
        yield from timed(_rows(model, dataset, items, cfg, skip, device))

    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=EVAL_SR.version),
        items,
        compute,
        f"{cfg.model} x{cfg.scale}",
        batch=1,
    )


SSIM_WINDOW = 11
"""The Gaussian SSIM window eval-sr measures with (the metric's default)."""


def _check_ssim_fits(cfg: EvalSRConfig, dataset: Any) -> None:
    """Refuse, at planning, images too small for the 11x11 SSIM window once the border is
    cropped (instead of failing after earlier cells stored rows)."""
    border = int(cfg.crop_border or 0)
    for name, (h, w) in zip(dataset.names(), dataset.hr_sizes(), strict=False):
        if min(h, w) - 2 * border < SSIM_WINDOW:
            raise InputError(
                f"eval-sr on {cfg.data}: {name} is {h}x{w} at x{cfg.scale}"
                f"{f' (hr_crop {cfg.hr_crop})' if cfg.hr_crop else ''}, and crop_border "
                f"{border} leaves less than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window: use a "
                "larger hr_crop or a smaller crop_border"
            )


def _rows(
    model: torch.nn.Module,
    dataset: Any,
    items: list[Item],
    cfg: EvalSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[tuple[int, Item, dict[str, Any]]]:
    border = int(cfg.crop_border or 0)
    for i, item in enumerate(items):
        if item.key in skip:
            continue
        pair = dataset[i]
        hr = pair.hr.to(device)
        with torch.no_grad():
            sr = model(pair.lr.to(device))
        if cfg.quantize:
            sr = quantize(sr)
        yield (
            i,
            item,
            {
                "psnr": float(psnr(sr, hr, crop_border=border, y_channel=cfg.y_channel)[0]),
                "ssim": float(ssim(sr, hr, crop_border=border, y_channel=cfg.y_channel)[0]),
                "height": int(hr.shape[-2]),
                "width": int(hr.shape[-1]),
            },
        )


def _title(cfg: dict[str, Any]) -> str:
    chan = "Y" if cfg["y_channel"] else "RGB"
    bits = "" if cfg["quantize"] else ", float output"
    return (
        f"{cfg['model']} x{cfg['scale']} on {cfg['data']} ({chan}, border "
        f"{cfg['crop_border']}{bits})"
    )


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """Per cell: the metric convention, the rows and the mean PSNR/SSIM."""
    out = []
    for c in cells:
        cfg = c.shown
        out.append(
            {
                **c.as_dict(),
                "title": _title(cfg),
                "metric": {
                    "channel": "y" if cfg["y_channel"] else "rgb",
                    "crop_border": cfg["crop_border"],
                    "quantized_8bit": cfg["quantize"],
                },
            }
        )
    return {"experiment": NAME, "cells": out}


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """One table per cell: PSNR/SSIM per image and the mean."""
    out = []
    for c in doc["cells"]:
        body = [
            [r["image"], f"{r['height']}x{r['width']}", fmt(r["psnr"], 2), fmt(r["ssim"], 4)]
            for r in c["rows"]
        ]
        body.append(["mean", "", fmt(c["mean"].get("psnr"), 2), fmt(c["mean"].get("ssim"), 4)])
        out.append(ReportTable(c["title"], ["image", "size", "PSNR (dB)", "SSIM"], body))
    return out


EVAL_SR = register_experiment(
    Experiment(
        name=NAME,
        config=EvalSRConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        description="PSNR/SSIM of an SR model on a dataset",
    )
)


def eval_sr(
    cfg: EvalSRConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellRun:
    """Evaluate an SR model's fidelity on a dataset, resuming from the store.

    Raises:
        AdvsrError: bad settings, unknown model or dataset, inconsistent data.
    """
    from advsr.engine.driver import run_one

    return run_one(NAME, cfg, store, progress=progress)
