"""The ``attack-sr`` experiment: SR attacks over a dataset, one cell per alpha.

Each image is attacked on its own (images differ in size) with a generator seeded by
``seed`` and the image index, so results do not depend on the order or on resumption.
Rows hold the measurements of :func:`advsr.attacks.sr_attack_metrics`.

Example:
    >>> from advsr.experiments.store import ResultStore
    >>> cfg = AttackSRConfig(model="bicubic", data="samples", scale=2, alpha=4 / 255,
    ...                      steps=3, hr_crop=32)
    >>> res = attack_sr(cfg, ResultStore(":memory:"), progress=False)
    >>> len(res.rows), res.mean["lr_psnr"] > 30
    (8, True)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from advsr.attacks._loop import eval_mode
from advsr.attacks.objectives import REFERENCES
from advsr.attacks.sr import DEFAULT_REFERENCE, SRAttackResult, basic_attack, sr_attack_metrics
from advsr.attacks.universal import (
    apply_perturbation,
    center_crop_batch,
    save_perturbation,
    universal_attack,
)
from advsr.data import SRDataset, open_dataset
from advsr.defenses.sr_side import SR_DEFENSES, apply_sr_defense
from advsr.devices import resolve_device
from advsr.errors import InputError, ShapeError
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import validate
from advsr.experiments.store import ResultStore
from advsr.io import file_sha256, read_image
from advsr.models.sr import create_sr_model

__all__ = [
    "AttackSRConfig",
    "attack_image",
    "attack_sr",
    "image_generator",
    "make_mask",
    "parse_alpha",
]

EXPERIMENT = "attack-sr"
METRICS_VERSION = 1


def parse_alpha(text: str | float, upper: float | None = 1.0) -> float:
    """``"8/255"``, ``"0.03"`` or a number -> float in ``[0, upper]`` (no bound if None).

    Raises:
        InputError: unparsable or out of range.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9.]+)\s*(?:/\s*([0-9.]+))?\s*", str(text))
        try:
            if m is None:
                raise ValueError
            value = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
        except (ValueError, ZeroDivisionError):
            raise InputError(
                f"the budget must be a number or a fraction like 8/255, got {text!r}"
            ) from None
    if value < 0.0 or (upper is not None and value > upper):
        bound = f"[0, {upper:g}] (images are in [0, 1])" if upper is not None else ">= 0"
        raise InputError(f"the budget must be {bound}, got {text!r}")
    return value


class AttackSRConfig(BaseModel):
    """Settings of one ``attack-sr`` cell.

    Attributes:
        model, weights, data, scale, hr_crop, device: as for ``eval-sr``.
        attack: ``basic`` or ``partial`` (needs ``mask``).
        alpha: total L-inf budget on the [0, 1] scale.
        steps: iterations ``T`` (step ``alpha / T``).
        reference: ``clean`` (needs ``random_start``), ``clean-8bit`` or ``ground-truth``.
        random_start: start at a uniform random point of the budget.
        seed: seed of the random start (combined with the image index).
        mask: ``center:F`` (centred rectangle, fraction F of each side),
            ``rect:TOP,LEFT,HEIGHT,WIDTH`` (LR pixels) or a mask image of the LR size.
        crop: universal attack: LR centre-crop size (default: the smallest image's size).
        batch_size: universal attack: images per forward/backward.
        save_perturbation: universal attack: write Delta to this ``.safetensors`` file.
        defense: SR-side defense (``resize-by-one``, ``self-ensemble``) the results are
            measured through.
        adaptive: craft through the defense (else on the bare model: non-adaptive).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "bicubic"
    weights: str | None = None
    data: str = "samples"
    scale: int = Field(4, ge=1)
    hr_crop: int | None = Field(None, ge=1)
    attack: Literal["basic", "partial", "universal"] = "basic"
    alpha: float = Field(8 / 255, ge=0.0, le=1.0)
    steps: int = Field(50, ge=1)
    reference: str = DEFAULT_REFERENCE
    random_start: bool = False
    seed: int = 0
    mask: str | None = None
    crop: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    save_perturbation: str | None = None
    defense: str | None = None
    adaptive: bool = False
    device: str = "auto"


def attack_image(
    model: torch.nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    cfg: AttackSRConfig | Any,
    index: int,
    mask: torch.Tensor | None = None,
) -> SRAttackResult:
    """The basic (or, with a mask, partial) attack of image ``index`` with ``cfg``'s settings
    (``alpha``, ``steps``, ``reference``, ``random_start``, ``seed``): one place for
    ``attack-sr`` and ``transfer-sr``."""
    return basic_attack(
        model,
        lr,
        eps=cfg.alpha,
        steps=cfg.steps,
        reference=cfg.reference,
        hr=hr,
        random_start=cfg.random_start,
        generator=image_generator(cfg.seed, index),
        mask=mask,
    )


def image_generator(seed: int, index: int) -> torch.Generator:
    """The generator of image ``index``: independent of order, batching and resumption."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def make_mask(spec: str, height: int, width: int) -> torch.Tensor:
    """A binary LR mask ``(1, 1, H, W)`` from ``center:F``, ``rect:T,L,H,W`` or a file.

    Raises:
        InputError: malformed spec or a rectangle outside the image.
        ShapeError: a mask file whose size differs from the LR image.
    """
    m = torch.zeros(1, 1, height, width)
    if spec.startswith("center:"):
        try:
            f = float(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"mask {spec!r}: expected center:FRACTION, e.g. center:0.5") from None
        if not 0 < f <= 1:
            raise InputError(f"mask fraction must be in (0, 1], got {f}")
        mh, mw = max(1, round(height * f)), max(1, round(width * f))
        top, left = (height - mh) // 2, (width - mw) // 2
        m[..., top : top + mh, left : left + mw] = 1
        return m
    if spec.startswith("rect:"):
        try:
            top, left, mh, mw = (int(v) for v in spec.split(":", 1)[1].split(","))
        except ValueError:
            raise InputError(f"mask {spec!r}: expected rect:TOP,LEFT,HEIGHT,WIDTH") from None
        if min(top, left) < 0 or mh < 1 or mw < 1 or top + mh > height or left + mw > width:
            raise InputError(f"mask {spec!r} does not fit an LR image of {height}x{width}")
        m[..., top : top + mh, left : left + mw] = 1
        return m
    img = read_image(Path(spec))
    if img.shape[-2:] != (height, width):
        raise ShapeError(
            f"mask {spec} is {img.shape[-2]}x{img.shape[-1]} but the LR image is {height}x{width}"
        )
    return (img.mean(dim=1, keepdim=True) > 0.5).float()


def cell_config(cfg: AttackSRConfig, dataset: SRDataset) -> dict[str, Any]:
    """The configuration that identifies an ``attack-sr`` cell in the store."""
    return {
        "model": cfg.model,
        "weights_sha256": file_sha256(cfg.weights) if cfg.weights else None,
        "dataset": dataset.identity(),
        "scale": cfg.scale,
        "hr_crop": cfg.hr_crop,
        "attack": cfg.attack,
        "alpha": cfg.alpha,
        "steps": cfg.steps,
        "reference": cfg.reference,
        "random_start": cfg.random_start,
        "seed": cfg.seed,
        "mask": cfg.mask,
        "crop": cfg.crop,
        "defense": cfg.defense,
        "adaptive": cfg.adaptive,
        "metrics_version": METRICS_VERSION,
    }


def _remeasure(target: torch.nn.Module, x0: torch.Tensor, res: SRAttackResult) -> SRAttackResult:
    """Outputs of the model under evaluation when the attack was crafted on another."""
    with eval_mode(target), torch.no_grad():
        return replace(res, sr_clean=target(x0), sr_adv=target(res.x_adv))


def _row(
    i: int,
    name: str,
    lr: torch.Tensor,
    hr: torch.Tensor | None,
    res: SRAttackResult,
    seconds: float,
) -> CellRow:
    m = sr_attack_metrics(lr, res, hr=hr)
    metrics: dict[str, Any] = {k: float(v[0]) for k, v in m.items()}
    metrics["linf"] = float((res.x_adv - lr).abs().max())
    return CellRow(idx=i, image=name, metrics=metrics, seconds=seconds)


def attack_sr_rows(
    model: torch.nn.Module,
    dataset: SRDataset,
    cfg: AttackSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[CellRow]:
    """The pure cell: attack every image not in ``skip`` and measure it."""
    target = apply_sr_defense(cfg.defense, model) if cfg.defense else model
    craft = target if cfg.adaptive else model
    if cfg.attack == "universal":
        yield from _universal_rows(craft, target, dataset, cfg, skip, device)
        return
    for i, name in enumerate(dataset.names()):
        if name in skip:
            continue
        t0 = time.perf_counter()
        pair = dataset[i]
        lr, hr = pair.lr.to(device), pair.hr.to(device)
        mask = None
        if cfg.attack == "partial":
            mask = make_mask(cfg.mask or "", lr.shape[-2], lr.shape[-1]).to(device)
        res = attack_image(craft, lr, hr, cfg, i, mask)
        if craft is not target:
            res = _remeasure(target, lr, res)
        yield _row(i, name, lr, hr, res, time.perf_counter() - t0)


def _universal_rows(
    craft: torch.nn.Module,
    target: torch.nn.Module,
    dataset: SRDataset,
    cfg: AttackSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[CellRow]:
    t0 = time.perf_counter()
    pairs = [dataset[i] for i in range(len(dataset))]
    size = (cfg.crop, cfg.crop) if cfg.crop else None
    lrs = center_crop_batch([p.lr for p in pairs], size).to(device)
    h, w = lrs.shape[-2:]
    s = cfg.scale
    hrs = center_crop_batch(
        [p.hr[..., : p.lr.shape[-2] * s, : p.lr.shape[-1] * s] for p in pairs], (h * s, w * s)
    ).to(device)
    uni = universal_attack(
        craft,
        lrs,
        eps=cfg.alpha,
        steps=cfg.steps,
        reference=cfg.reference,
        hr=hrs,
        batch_size=cfg.batch_size,
    )
    if cfg.save_perturbation:
        save_perturbation(
            cfg.save_perturbation,
            uni.delta,
            {
                "model": cfg.model,
                "scale": s,
                "alpha": cfg.alpha,
                "steps": cfg.steps,
                "images": dataset.names(),
                "crop": [h, w],
            },
        )
    delta_share = (time.perf_counter() - t0) / len(pairs)  # Delta's cost, shared by the images
    for i, name in enumerate(dataset.names()):
        if name in skip:
            continue
        t_img = time.perf_counter()
        lr = lrs[i : i + 1]
        xa = apply_perturbation(uni.delta, lr)
        with eval_mode(target), torch.no_grad():
            res = SRAttackResult(xa, target(lr), target(xa), uni.losses[:, None])
        seconds = delta_share + time.perf_counter() - t_img
        yield _row(i, name, lr, hrs[i : i + 1], res, seconds)


def attack_sr(
    cfg: AttackSRConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellResult:
    """Run one ``attack-sr`` cell with resume (see the module docstring).

    Raises:
        AdvsrError: bad settings (alpha, steps, reference, mask), unknown model or dataset.
    """
    if not isinstance(cfg, AttackSRConfig):
        cfg = validate(AttackSRConfig, cfg)
    if cfg.reference not in REFERENCES:
        raise InputError(f"unknown reference {cfg.reference!r}; use one of {', '.join(REFERENCES)}")
    if cfg.reference == "clean" and not cfg.random_start:
        raise InputError("reference 'clean' needs --random-start (its gradient is zero at X0)")
    if cfg.defense is not None:
        SR_DEFENSES.get(cfg.defense)  # unknown names fail before any work
    if cfg.attack == "universal" and cfg.reference == "clean":
        raise InputError("the universal attack starts at Delta = 0: use clean-8bit or ground-truth")
    if cfg.attack == "partial" and not cfg.mask:
        raise InputError("the partial attack needs a mask (--mask center:0.5, rect:..., or a file)")
    device = resolve_device(cfg.device)
    dataset = open_dataset(cfg.data, cfg.scale, hr_crop=cfg.hr_crop)
    if cfg.attack == "partial" and cfg.mask:  # check the mask against the first image now
        first = dataset[0]
        make_mask(cfg.mask, first.lr.shape[-2], first.lr.shape[-1])
    model = create_sr_model(cfg.model, cfg.scale, cfg.weights).to(device)
    res = run_cell(
        store,
        EXPERIMENT,
        cell_config(cfg, dataset),
        dataset.names(),
        lambda skip: attack_sr_rows(model, dataset, cfg, skip, device),
        description=f"{cfg.attack} attack {cfg.model} x{cfg.scale} alpha {cfg.alpha * 255:.3g}/255",
        progress=progress,
    )
    return res
