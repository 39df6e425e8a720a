"""The ``attack-clf`` experiment: a classifier attack at one budget over a labelled dataset.

Rows per image: ``correct`` (clean prediction right), ``adv_correct`` (still right after the
attack), ``success`` (the attack changed a right prediction), ``l2``, ``linf`` and
``psnr``/``ssim`` of ``x_adv`` vs ``x``. :func:`summarise` turns them into clean accuracy,
robust accuracy, fooling rate (successes among the clean-correct images) and mean/median
L2 and L-inf of the successful perturbations.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Iterator
from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field

from advsr.attacks.classifier import ATTACKS, AttackOutput
from advsr.attacks.minimal import MINIMAL_ATTACKS, carlini_wagner_l2
from advsr.attacks.perceptual import fpgap, pgap
from advsr.data.labelled import LabelledSet, open_labelled
from advsr.devices import resolve_device
from advsr.errors import InputError, UnknownNameError
from advsr.experiments.attack_sr import image_generator
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import validate
from advsr.experiments.store import ResultStore
from advsr.io import file_sha256
from advsr.metrics import psnr, ssim
from advsr.models.classifiers import create_classifier

__all__ = [
    "AttackClfConfig",
    "AttackSettings",
    "ClassifierCellConfig",
    "attack_clf",
    "check_attack_name",
    "run_clf_attack",
    "summarise",
]

EXPERIMENT = "attack-clf"


class ClassifierCellConfig(BaseModel):
    """Settings every classifier-attack experiment cell has (classifier, data, running)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "digits-cnn"
    weights: str | None = None
    data: str = "digits-test"
    pattern: str | None = None
    per_class: int | None = Field(None, ge=1)
    steps: int = Field(10, ge=1)
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    device: str = "auto"


class AttackClfConfig(ClassifierCellConfig):
    """Settings of one ``attack-clf`` cell (one attack at one budget)."""

    limit: int | None = Field(None, ge=1)
    attack: str = "pgd"
    eps: float | None = Field(8 / 255, ge=0.0)
    loss: Literal["ce", "cw"] = "ce"
    kappa: float = Field(0.0, ge=0.0)


def _pgap(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> AttackOutput:
    res = pgap(model, x, y, **kw)
    return AttackOutput(res.x_adv, model, y)


PERCEPTUAL_ATTACKS: dict[str, Any] = {"fpgap": fpgap, "pgap": _pgap}
"""SSIM-constrained attacks (budget ``eps2``, ``steps`` = iterations of Algorithm 1/2)."""


class AttackSettings(Protocol):
    """The attack fields shared by the classifier experiments' configs."""

    @property
    def attack(self) -> str: ...
    @property
    def eps(self) -> float | None: ...
    @property
    def steps(self) -> int: ...
    @property
    def loss(self) -> str: ...
    @property
    def kappa(self) -> float: ...
    @property
    def seed(self) -> int: ...


def run_clf_attack(
    model: torch.nn.Module, cfg: AttackSettings, x: torch.Tensor, y: torch.Tensor, first: int
) -> AttackOutput:
    """Run the configured attack on one batch (``first``: dataset index of its first image,
    which seeds the attack's randomness independently of batching)."""
    if cfg.attack == "cw-l2":
        return carlini_wagner_l2(model, x, y, kappa=cfg.kappa)
    if cfg.attack in PERCEPTUAL_ATTACKS:  # the budget is eps2 of S2 >= 1 - eps2^2
        fn = PERCEPTUAL_ATTACKS[cfg.attack]
        return fn(model, x, y, eps2=float(cfg.eps or 0.0), iterations=cfg.steps)
    if cfg.attack in MINIMAL_ATTACKS:
        fn = MINIMAL_ATTACKS.get(cfg.attack)
        return fn(model, x, y)  # type: ignore[operator]
    return ATTACKS.get(cfg.attack)(
        model,
        x,
        y,
        eps=float(cfg.eps or 0.0),
        steps=cfg.steps,
        loss=cfg.loss,
        kappa=cfg.kappa,
        generator=image_generator(cfg.seed, first),
    )


def check_attack_name(name: str, extra: tuple[str, ...] = ()) -> bool:
    """True for a minimal attack, False for a budgeted one; unknown names raise.

    Raises:
        UnknownNameError: with the closest known names.
    """
    if name in MINIMAL_ATTACKS or name in extra:
        return True
    if name in ATTACKS or name in PERCEPTUAL_ATTACKS:
        return False
    known = ATTACKS.names() + list(PERCEPTUAL_ATTACKS) + MINIMAL_ATTACKS.names() + list(extra)
    close = difflib.get_close_matches(name.lower(), known, n=2)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise UnknownNameError(f"unknown attack {name!r}{hint}; known: {', '.join(known)}")


def _rows(
    model: torch.nn.Module,
    data: LabelledSet,
    cfg: AttackClfConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[CellRow]:
    todo = [i for i, n in enumerate(data.names) if n not in skip]
    for start in range(0, len(todo), cfg.batch_size):
        t0 = time.perf_counter()
        idx = todo[start : start + cfg.batch_size]
        x, y = data.x[idx].to(device), data.y[idx].to(device)
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        out = run_clf_attack(model, cfg, x, y, idx[0])
        adv_correct = out.predictions == y
        d = (out.x_adv - x).flatten(1)
        big = min(x.shape[-2:]) >= 11
        p = psnr(out.x_adv, x)
        s = ssim(out.x_adv, x) if big else None
        per = (time.perf_counter() - t0) / len(idx)
        for j, i in enumerate(idx):
            yield CellRow(
                i,
                data.names[i],
                {
                    "correct": float(correct[j]),
                    "adv_correct": float(adv_correct[j]),
                    "success": float(bool(correct[j]) and not bool(adv_correct[j])),
                    "l2": float(d[j].norm()),
                    "linf": float(d[j].abs().max()),
                    "psnr": float(p[j]),
                    **({"ssim": float(s[j])} if s is not None else {}),
                },
                per,
            )


def summarise(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Clean/robust accuracy, fooling rate and perturbation sizes of one cell's rows."""
    n = len(rows)
    if n == 0:
        return {}
    ok = [r for r in rows if r["correct"] == 1.0]
    fooled = [r for r in ok if r["success"] == 1.0]

    def stat(key: str, fn: Any) -> float | None:
        return float(fn([r[key] for r in fooled])) if fooled else None

    return {
        "images": float(n),
        "clean_accuracy": len(ok) / n,
        "robust_accuracy": sum(r["adv_correct"] for r in rows) / n,
        "fooling_rate": len(fooled) / len(ok) if ok else None,
        "l2_mean": stat("l2", statistics.fmean),
        "l2_median": stat("l2", statistics.median),
        "linf_mean": stat("linf", statistics.fmean),
        "linf_median": stat("linf", statistics.median),
        "psnr_mean": stat("psnr", statistics.fmean),
        "ssim_mean": stat("ssim", statistics.fmean) if fooled and "ssim" in fooled[0] else None,
    }


def attack_clf(
    cfg: AttackClfConfig | dict[str, Any], store: ResultStore, *, progress: bool | None = None
) -> CellResult:
    """Run one cell with resume; ``summarise(result.rows)`` gives the table entries.

    Raises:
        AdvsrError: unknown attack (with suggestions), model or dataset; bad budget.
    """
    if not isinstance(cfg, AttackClfConfig):
        cfg = validate(AttackClfConfig, cfg)
    minimal = check_attack_name(cfg.attack)
    if not minimal and cfg.eps is None:
        raise InputError(f"{cfg.attack} needs --eps")
    device = resolve_device(cfg.device)
    data = open_labelled(cfg.data, limit=cfg.limit, pattern=cfg.pattern, per_class=cfg.per_class)
    model = create_classifier(cfg.model, cfg.weights).to(device)
    if int(data.y.max()) >= model.num_classes:
        raise InputError(
            f"labels of {cfg.data} exceed the {model.num_classes} classes of {cfg.model}"
        )
    config = {
        **cfg.model_dump(exclude={"weights", "device", "batch_size"}),
        "eps": None if minimal else cfg.eps,
        "loss": None if minimal else cfg.loss,
        "kappa": cfg.kappa if cfg.loss == "cw" or cfg.attack == "cw-l2" else None,
        "weights_sha256": file_sha256(cfg.weights) if cfg.weights else None,
    }
    return run_cell(
        store,
        EXPERIMENT,
        config,
        data.names,
        lambda skip: _rows(model, data, cfg, skip, device),
        description=f"{cfg.attack} on {cfg.model}",
        progress=progress,
    )
