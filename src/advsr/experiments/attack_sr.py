"""The ``attack-sr`` experiment: an SR attack at one budget over a dataset.

Each image is attacked on its own (images differ in size) with a generator seeded by
``seed`` and the image's position, so results do not depend on the order or on resumption.
Rows hold :func:`advsr.attacks.sr.sr_metrics` and the perturbation's size.

* ``basic`` / ``partial``: the image-specific attacks (Choi et al. 2019).
* ``universal``: one Delta crafted on the images of ``craft_on`` (``first-half``, the
  default, holds the second half of the dataset out: the rows measure Delta on images it was
  **not** crafted on; ``all`` measures it on the images it was crafted on, the paper's
  setting), centre-cropped to a common size, then applied (tiled) to each measured image at
  its full size. Delta is stored with the cell (and written to ``save_perturbation``).
* ``apply_perturbation``: a saved Delta applied to any data and model (its transferability
  across images and models); no attack runs.

With a ``defense`` the results are measured through it; ``adaptive`` crafts through it too
(else on the bare model: non-adaptive).

Grayscale images (R = G = B at every pixel, as a gray file is read) are attacked like colour
ones by default (``gray="rgb"``): each channel gets its own perturbation, so the adversarial
image is in general no longer gray. ``gray="keep"`` attacks them through the gray projection
:func:`gray_projection` (each pixel's channel mean on R, G and B): the model sees only gray
images, so the gradient of every step is the same on the three channels, and the result is
projected once more (within the budget). That is the attack on the one-channel image whose
three copies the model receives, and it changes Y only (not Cb, Cr). A universal Delta is
projected the same way where it is applied to a gray image. Colour images are unaffected.

Example:
    >>> from advsr.engine.store import ResultStore
    >>> res = attack_sr({"model": "bicubic", "data": "samples", "scale": 2, "eps": 4 / 255,
    ...                  "steps": 3, "hr_crop": 32}, ResultStore(":memory:"), progress=False)
    >>> len(res.rows), res.mean["lr_psnr"] > 30
    (8, True)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import AliasChoices, Field
from torch import nn

from advsr.attacks.base import Attack, enforce_budget
from advsr.attacks.budget import BUDGET, format_budget
from advsr.attacks.sr import DEFAULT_REFERENCE, sr_metrics
from advsr.attacks.universal import (
    apply_perturbation,
    center_crop_batch,
    load_perturbation,
    save_perturbation,
)
from advsr.engine.attack_cells import configured_attack, image_generator, items_of
from advsr.engine.cell import (
    ATTACK,
    MAX_BATCH,
    MAX_STEPS,
    SEEDED,
    Artifact,
    CellConfig,
    CellRun,
    Experiment,
    Item,
    Plan,
    ReportParts,
    cell_identity,
    figure_artifacts,
    register_experiment,
    stored_figures,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.io import check_output_path
from advsr.modes import eval_mode
from advsr.report import Plot, ReportTable, fmt
from advsr.settings import DATA, MODEL, NEUTRAL, WEIGHTS

__all__ = ["AttackSRConfig", "attack_sr", "gray_projection", "is_gray", "sr_figure"]

NAME = "attack-sr"
PSNR_COLUMNS = (
    "lr_psnr",
    "sr_psnr",
    "sr_psnr_y",
    "sr_hr_psnr",
    "sr_psnr_inside",
    "sr_psnr_outside",
)


class AttackSRConfig(CellConfig):
    """Settings of one ``attack-sr`` cell (see the field docstrings)."""

    model: Annotated[str, MODEL] = "bicubic"
    """SR model: a zoo name (`advsr list models`) or a model file."""
    weights: Annotated[str | None, WEIGHTS] = None
    """Weight file of a zoo model."""
    data: Annotated[str, DATA] = "samples"
    """Dataset name or path."""
    scale: int = Field(4, ge=1)
    """SR factor."""
    hr_crop: int | None = Field(None, ge=1)
    """Centre-crop HR images (quick runs)."""
    attack: Annotated[str, ATTACK] = "basic"
    """basic, partial or universal (or name@budget)."""
    eps: Annotated[float, ATTACK, BUDGET] = Field(
        8 / 255, ge=0.0, le=1.0, validation_alias=AliasChoices("eps", "alpha")
    )
    """Total L-inf budget on the [0, 1] scale (the paper's alpha; `alpha` is its other name)."""
    steps: Annotated[int, ATTACK] = Field(50, ge=1, le=MAX_STEPS)
    """Iterations T (step eps/T)."""
    reference: Annotated[str, ATTACK] = DEFAULT_REFERENCE
    """clean (needs --random-start), clean-8bit or ground-truth."""
    random_start: Annotated[bool, ATTACK] = False
    """Start at a uniform random point of the budget."""
    mask: Annotated[str | None, ATTACK] = None
    """Partial attack mask: center:F, rect:T,L,H,W or a mask file (default center:0.5)."""
    seed: Annotated[int, SEEDED] = 0
    """Seed of the random start (combined with the image position)."""
    random_weights: bool = False
    """Run a zoo model that has no weights untrained, initialised from the seed (refused
    without it); every table row of such a cell says "random weights"."""
    crop: int | None = Field(None, ge=1)
    """Universal attack: LR centre-crop size (default: the smallest image's size)."""
    craft_on: Literal["first-half", "all"] = "first-half"
    """Universal attack: craft Delta on first-half (measure on held-out images) or all."""
    batch_size: Annotated[int, NEUTRAL] = Field(8, ge=1, le=MAX_BATCH)
    """Universal attack: images per forward/backward (memory only)."""
    save_perturbation: Annotated[str | None, NEUTRAL] = None
    """Universal attack: also write Delta to this .safetensors file."""
    apply_perturbation: Annotated[str | None, WEIGHTS] = None
    """Apply this saved Delta (.safetensors) instead of attacking."""
    defense: str | None = None
    """SR-side defense the results are measured through: resize-by-one or self-ensemble."""
    adaptive: bool = False
    """Craft through the defense (else on the bare model: non-adaptive)."""
    show: Annotated[list[str], NEUTRAL] = Field(default_factory=list)
    """Keep the figures of these images (LR, attacked LR, perturbation, SR outputs)."""
    compile: bool = False
    """torch.compile the model for the attack (falls back to eager with a notice)."""
    gray: Literal["rgb", "keep"] = "rgb"
    """Grayscale images (R = G = B): rgb perturbs each channel (the adversarial image is in
    colour); keep attacks through the gray projection (one perturbation for R, G and B: Y
    only), so it stays gray. Colour images are unaffected."""

    identity_defaults: ClassVar[dict[str, Any]] = {**CellConfig.identity_defaults, "gray": "rgb"}


def _attack(cfg: AttackSRConfig) -> Attack | None:
    if cfg.apply_perturbation:
        return None
    attack = configured_attack(
        cfg.attack,
        cfg.eps,
        explicit=cfg.model_fields_set,
        steps=cfg.steps,
        reference=cfg.reference,
        random_start=cfg.random_start,
        mask=cfg.mask,
        batch_size=cfg.batch_size,
    )
    if attack.entry.domain != "sr":
        raise InputError(f"{attack.name} is a classifier attack; use attack-clf")
    return attack


def _check_up_front(cfg: AttackSRConfig, attack: Attack | None, universal: bool) -> None:
    """What fails before any data is read: an unknown defense, a Delta to apply that does
    not load, a Delta to save from an attack that has none, or where it cannot be written.

    Raises:
        InputError: ``save_perturbation`` without the universal attack, or a bad path.
    """
    from advsr.defenses.registry import get_defense

    if cfg.defense is not None:
        get_defense(cfg.defense, "sr")  # unknown names fail before any work
    if cfg.apply_perturbation:
        load_perturbation(cfg.apply_perturbation)
    if cfg.save_perturbation:
        if not universal:
            what = attack.name if attack is not None else "apply_perturbation"
            raise InputError(
                f"save_perturbation writes the universal attack's Delta; {what} has none "
                "(use --attack universal)"
            )
        check_output_path(cfg.save_perturbation, ".safetensors")


def _craft_and_measure(cfg: AttackSRConfig, n: int, universal: bool) -> tuple[list[int], list[int]]:
    """The indices of the images a universal Delta is crafted on (none for the other
    attacks) and of those the rows measure (see the module docstring).

    Raises:
        InputError: a held-out universal attack on fewer than 2 images.
    """
    measured = list(range(n))
    if not universal:
        return [], measured
    if cfg.craft_on != "first-half":
        return measured, measured
    if n < 2:
        raise InputError("a held-out universal attack needs >= 2 images (or craft_on=all)")
    half = (n + 1) // 2
    return list(range(half)), list(range(half, n))


def _shown_keys(
    cfg: AttackSRConfig, items: list[Item], measured: list[int], universal: bool
) -> tuple[str, ...]:
    """The keys of the measured images whose figures ``show`` asks for.

    Raises:
        InputError: a name in ``show`` that is not a measured image of the cell.
    """
    names = [items[i].name for i in measured]
    unknown = sorted(set(cfg.show) - set(names))
    if unknown:
        held = " measured (the others Delta is crafted on)" if universal else ""
        raise InputError(
            f"--show {', '.join(unknown)}: not an image{held} of this cell (images: "
            f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
        )
    return tuple(items[i].key for i in measured if items[i].name in cfg.show)


def _plan(cfg: AttackSRConfig, ctx: Context) -> Plan:
    attack = _attack(cfg)
    universal = attack is not None and attack.name == "universal"
    _check_up_front(cfg, attack, universal)
    dataset = ctx.sr_dataset(cfg.data, cfg.scale, cfg.hr_crop, use="attack-sr", gray=cfg.gray)
    device = ctx.device(cfg.device)
    ctx.sr_model(cfg.model, cfg.scale, cfg.weights, device, cfg.init_seed)
    items = items_of(dataset.keys(), dataset.names())
    if attack is not None and attack.name == "partial" and cfg.mask is not None:
        from advsr.attacks.sr import make_mask

        first = dataset[0]  # the mask must fit the first image now
        make_mask(cfg.mask, first.lr.shape[-2], first.lr.shape[-1])
    craft, measured = _craft_and_measure(cfg, len(items), universal)
    info = {"crafted_on": [items[i].name for i in craft]} if universal else {}
    extra = {} if universal else {"craft_on": None, "crop": None}
    if cfg.apply_perturbation:
        extra["attack"] = None

    def compute(skip: set[str]) -> Iterator[Any]:
        model = ctx.sr_model(cfg.model, cfg.scale, cfg.weights, device, cfg.init_seed)
        if cfg.compile:
            model = ctx.compiled(model)
        yield from _rows(model, dataset, items, measured, craft, attack, cfg, skip, device)

    shown_keys = _shown_keys(cfg, items, measured, universal)
    label = attack.label if attack is not None else f"Delta {_shown(cfg.apply_perturbation)}"
    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=ATTACK_SR.version, attack=attack, extra=extra),
        [items[i] for i in measured],
        compute,
        f"{label} on {cfg.model} x{cfg.scale}",
        info,
        batch=None if universal or cfg.apply_perturbation else 1,
        figures=shown_keys,
    )


def _targets(
    model: torch.nn.Module, cfg: AttackSRConfig
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The model results are measured on, and the one attacks are crafted on."""
    from advsr.defenses.registry import apply_sr_defense

    target = apply_sr_defense(cfg.defense, model) if cfg.defense else model
    return target, (target if cfg.adaptive else model)


def is_gray(x: torch.Tensor) -> bool:
    """True when every image of the batch has R == G == B at every pixel.

    Shape:
        ``(N, 3, H, W)`` -> bool.
    """
    return bool(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]))


def gray_projection(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's mean over R, G and B, on all three channels: the orthogonal projection
    onto gray images (its gradient is the channel mean of the incoming one, broadcast).

    Written as ``R + mean(x - R)`` so that a gray image is returned exactly (a plain float32
    mean of three equal values is not always that value).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Example:
        >>> x = torch.tensor([0.1, 0.2, 0.6]).view(1, 3, 1, 1)
        >>> [round(v, 4) for v in gray_projection(x).flatten().tolist()]
        [0.3, 0.3, 0.3]
    """
    base = x[:, :1]
    return (base + (x - base).mean(dim=1, keepdim=True)).expand_as(x).contiguous()


class _GrayInput(nn.Module):
    """``model`` applied to the gray projection of its input (``gray="keep"``).

    Shape:
        ``(N, 3, h, w)`` -> the model's output.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(gray_projection(x))


def _rows(
    model: torch.nn.Module,
    dataset: Any,
    items: list[Item],
    measured: list[int],
    craft: list[int],
    attack: Attack | None,
    cfg: AttackSRConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[Any]:
    import time

    target, crafter = _targets(model, cfg)
    delta = None
    t0 = time.perf_counter()
    if cfg.apply_perturbation:
        delta = load_perturbation(cfg.apply_perturbation).to(device)
    elif attack is not None and attack.name == "universal":
        delta = _craft_universal(crafter, dataset, craft, attack, cfg, device)
        yield Artifact("delta.safetensors", _delta_bytes(delta, cfg), "application/safetensors")
    share = (time.perf_counter() - t0) / max(len(measured), 1)  # Delta's cost per row
    for i in measured:
        item = items[i]
        if item.key in skip:
            continue
        t1 = time.perf_counter()
        pair = dataset[i]
        lr, hr = pair.lr.to(device), pair.hr.to(device)
        mask_hr = outputs = None
        keep = cfg.gray == "keep" and is_gray(lr)
        if delta is not None:
            size = float(delta.abs().max()) if cfg.apply_perturbation else cfg.eps
            x_adv = apply_perturbation(delta, lr)
            x_adv = enforce_budget(gray_projection(x_adv) if keep else x_adv, lr, "linf", size)
        else:
            assert attack is not None
            gen = image_generator(cfg.seed, i)
            res = attack(_GrayInput(crafter) if keep else crafter, lr, hr, generator=gen)
            x_adv, mask_hr = res.x_adv, res.outputs.get("mask_hr")
            if keep:  # the model saw only the projection: that is the adversarial image
                x_adv = enforce_budget(gray_projection(x_adv), lr, "linf", attack.eps)
            outputs = (res.sr_clean, res.sr_adv) if crafter is target and not keep else None
        if outputs is None:  # measured on another model than the one that crafted
            with eval_mode(target), torch.no_grad():
                outputs = (target(lr), target(x_adv))
        sr_clean, sr_adv = outputs
        m = sr_metrics(lr, x_adv, sr_clean, sr_adv, hr=hr, mask_hr=mask_hr)
        metrics: dict[str, Any] = {k: float(v[0]) for k, v in m.items()}
        metrics["linf"] = float((x_adv - lr).abs().max())
        if item.name in cfg.show:
            yield from figure_artifacts(item.key, sr_figure(lr, x_adv, sr_clean, sr_adv, cfg.eps))
        yield _row(i, item, metrics, share + time.perf_counter() - t1)


def _row(i: int, item: Item, metrics: dict[str, Any], seconds: float) -> Any:
    from advsr.engine.cell import CellRow

    return CellRow(i, item.key, item.name, metrics, seconds)


def _craft_universal(
    model: torch.nn.Module,
    dataset: Any,
    craft: list[int],
    attack: Attack,
    cfg: AttackSRConfig,
    device: torch.device,
) -> torch.Tensor:
    pairs = [dataset[i] for i in craft]
    size = (cfg.crop, cfg.crop) if cfg.crop else None
    lrs = center_crop_batch([p.lr for p in pairs], size).to(device)
    h, w = lrs.shape[-2:]
    s = cfg.scale
    hrs = center_crop_batch(
        [p.hr[..., : p.lr.shape[-2] * s, : p.lr.shape[-1] * s] for p in pairs], (h * s, w * s)
    ).to(device)
    delta = attack(model, lrs, hrs).outputs["delta"]
    if cfg.save_perturbation:
        save_perturbation(cfg.save_perturbation, delta, _delta_info(cfg, pairs, (h, w)))
    return delta


def _delta_info(cfg: AttackSRConfig, pairs: list[Any], crop: tuple[int, int]) -> dict[str, Any]:
    return {
        "model": cfg.model,
        "scale": cfg.scale,
        "eps": cfg.eps,
        "steps": cfg.steps,
        "images": [p.name for p in pairs],
        "crop": list(crop),
    }


def _delta_bytes(delta: torch.Tensor, cfg: AttackSRConfig) -> bytes:
    from safetensors.torch import save

    meta = {"advsr_universal": json.dumps({"model": cfg.model, "eps": cfg.eps})}
    return save({"delta": delta.detach().cpu().contiguous()}, metadata=meta)


def sr_figure(
    lr: torch.Tensor,
    x_adv: torch.Tensor,
    sr_clean: torch.Tensor,
    sr_adv: torch.Tensor,
    eps: float,
) -> list[tuple[str, torch.Tensor]]:
    """The images of one attacked input: LR, attacked LR, the perturbation amplified to the
    full grey range, clean and attacked SR outputs (``(1, 3, H, W)`` each)."""
    scale = 0.5 / eps if eps > 0 else 1.0
    delta = ((x_adv - lr) * scale + 0.5).clamp(0, 1)
    return [
        ("lr", lr),
        ("lr_attacked", x_adv),
        ("perturbation", delta),
        ("sr_clean", sr_clean.clamp(0, 1)),
        ("sr_attacked", sr_adv.clamp(0, 1)),
    ]


# ------------------------------------------------------------------------------ reports


def _shown(path: str | None) -> str:
    from advsr.files import file_label

    return file_label(path) if path else "-"


def _label(cfg: dict[str, Any]) -> str:
    if cfg.get("apply_perturbation"):
        return f"Delta {cfg['apply_perturbation']}"
    if "@" in str(cfg["attack"]):  # name@budget[:options]: its own budget wins over eps
        return str(cfg["attack"])
    return f"{cfg['attack']}@{format_budget(cfg['eps'])}"


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """Mean PSNRs per cell (keyed by model, scale and budget), and the curves over eps."""
    out = [{**c.as_dict(), "label": _label(c.shown)} for c in cells]
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for doc in out:
        cfg, mean = doc["config"], doc["mean"]
        if cfg.get("apply_perturbation") or "sr_psnr" not in mean:
            continue
        key = f"{cfg['model']} x{cfg['scale']} {cfg['attack']}"
        curves.setdefault(key, []).append((cfg["eps"] * 255, mean["lr_psnr"], mean["sr_psnr"]))
    return {"experiment": NAME, "cells": out, "curves": {k: sorted(v) for k, v in curves.items()}}


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """One row per cell: model, scale, data, attack and its mean PSNRs (dB)."""
    cells = doc["cells"]
    cols = [c for c in PSNR_COLUMNS if any(c in x["mean"] for x in cells)]
    body = []
    for c in cells:
        cfg = c.get("shown", c["config"])
        behind = ""
        if cfg.get("defense"):
            behind = f" ({'adaptive' if cfg['adaptive'] else 'non-adaptive'} vs {cfg['defense']})"
        body.append(
            [
                f"{cfg['model']} x{cfg['scale']}",
                str(cfg["data"]),
                c["label"] + behind,
                f"{c['stored']}/{c['expected']}",
                *(fmt(c["mean"].get(k), 2) for k in cols),
            ]
        )
    title = "SR attacks: mean PSNR (dB; LR: attacked vs clean input, SR: vs clean output)"
    return [ReportTable(title, ["model", "data", "attack", "images", *cols], body)]


def report(
    doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None = None
) -> ReportParts:
    """The table, the LR/SR PSNR curves over the budget, and the stored figures."""
    plots = [
        Plot(
            f"{which} PSNR over the budget",
            "eps (x/255)",
            f"{which} PSNR (dB)",
            [(k, [(a, p[j]) for a, *p in v]) for k, v in doc["curves"].items()],
            ylim=None,
        )
        for j, which in ((0, "LR"), (1, "SR"))
        if doc["curves"]
    ]
    figures = stored_figures(cells, store, figure_title)
    return ReportParts(
        "advsr attack-sr", "SR attacks (Choi et al. 2019).", tables(doc), plots, figures
    )


def figure_title(cell: CellRun, item: str) -> str:
    """``chelsea: demo-edsr x4, basic@8/255``."""
    cfg = cell.shown
    return f"{item}: {cfg.get('model')} x{cfg.get('scale')}, {_label(cfg)}"


ATTACK_SR = register_experiment(
    Experiment(
        name=NAME,
        config=AttackSRConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        report=report,
        description="basic, partial and universal attacks on an SR model (Choi et al. 2019)",
    )
)


def attack_sr(
    cfg: AttackSRConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellRun:
    """Run one ``attack-sr`` cell with resume (see the module docstring).

    Raises:
        AdvsrError: bad settings (budget, steps, reference, mask), unknown model or dataset.
    """
    from advsr.engine.driver import run_one

    return run_one(NAME, cfg, store, progress=progress)
