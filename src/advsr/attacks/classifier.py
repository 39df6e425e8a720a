"""Gradient attacks on classifiers, all on the shared engine (:mod:`advsr.attacks._loop`).

Each attack is ``attack(model, x, y, *, eps, ..., targeted=False, generator=None) ->
AttackOutput`` and is registered in :data:`ATTACKS`. As in foolbox 3, the final examples are
projected onto the budget and ``[0, 1]`` by the base (:func:`_finish`), so no attack can
return an out-of-budget example, and success is measured on the returned examples.

* FGSM (Goodfellow et al. 2015): one sign step of size ``eps``.
* FGM-L2: one step of L2 length ``eps`` along the normalised gradient.
* I-FGSM / BIM (Kurakin et al. 2017): ``steps`` sign steps of ``eps / steps``.
* PGD L-inf / L2 (Madry et al. 2018): uniform random start in the ball, step
  ``2.5 eps / steps``.
* MI-FGSM (Dong et al. 2018): momentum ``mu`` on per-sample L1-normalised gradients.
* DI2-FGSM / MDI2-FGSM (Xie et al. 2019): with probability ``p`` the input is randomly
  resized to ``[H, r H)`` and zero-padded at a random position to ``r H`` (r = 330/299, the
  paper's 299 -> [299, 330) -> 330), the gradient flowing through the transform; MDI2 adds
  momentum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advsr.attacks._loop import eval_mode, project, random_start, run_steps
from advsr.attacks.objectives import cross_entropy
from advsr.checks import check_image, check_positive_int
from advsr.errors import InputError, ShapeError
from advsr.registry import Registry
from advsr.types import Budget

__all__ = ["ATTACKS", "AttackEntry", "AttackOutput", "input_diversity", "run_attack"]


class AttackOutput:
    """Adversarial examples, with the model's predictions and per-image success on them.

    ``predictions`` and ``success`` are measured on the returned ``x_adv`` on first access
    (one forward pass in eval mode, then cached), so a caller that only needs the examples
    (a transfer study, an outer adaptive loop) does not pay for a pass it does not use.
    Read them before changing the model's weights.

    Shape:
        ``x_adv`` ``(N, C, H, W)``; ``predictions`` ``(N,)`` (long), ``success`` ``(N,)``
        (bool: prediction != label, or == target label for targeted attacks).
    """

    __slots__ = ("_model", "_pred", "_targeted", "_y", "x_adv")

    def __init__(
        self, x_adv: torch.Tensor, model: nn.Module, y: torch.Tensor, *, targeted: bool = False
    ) -> None:
        self.x_adv = x_adv
        self._model = model
        self._y = y
        self._targeted = targeted
        self._pred: torch.Tensor | None = None

    @property
    def predictions(self) -> torch.Tensor:
        """The model's labels for ``x_adv`` (computed once)."""
        if self._pred is None:
            with torch.no_grad(), eval_mode(self._model):
                self._pred = self._model(self.x_adv).argmax(dim=1)
        return self._pred

    @property
    def success(self) -> torch.Tensor:
        """Per-image success of the attack on ``x_adv``."""
        yy = self._y.to(self.predictions.device)
        return self.predictions == yy if self._targeted else self.predictions != yy


def _check_inputs(x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    check_image(x, "x", check_range=True)
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ShapeError(f"labels must have shape ({x.shape[0]},), got {shape}")
    if isinstance(eps, bool) or not math.isfinite(float(eps)) or float(eps) < 0:
        raise InputError(f"eps must be a finite number >= 0, got {eps}")


def _finish(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    budget: Budget,
    targeted: bool,
) -> AttackOutput:
    """Enforce the budget and the [0, 1] range (foolbox-style); success is judged on these."""
    x_adv = project(x_adv.detach().clamp(0.0, 1.0), x, budget).clamp(0.0, 1.0)
    return AttackOutput(x_adv, model, y, targeted=targeted)


def input_diversity(
    p: float = 0.5, ratio: float = 330 / 299, generator: torch.Generator | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """DI2-FGSM's random resize-and-pad transform (applied with probability ``p``).

    Randomness is drawn on the CPU from ``generator``; resizing is nearest-neighbour as in
    the reference implementation; the gradient flows through it.
    """
    if not 0.0 <= p <= 1.0:
        raise InputError(f"diversity probability must be in [0, 1], got {p}")

    def transform(x: torch.Tensor) -> torch.Tensor:
        if float(torch.rand((), generator=generator)) >= p:
            return x
        h, w = x.shape[-2:]
        out_h, out_w = math.floor(h * ratio), math.floor(w * ratio)
        rh = int(torch.randint(h, max(out_h, h + 1), (), generator=generator))
        rw = int(torch.randint(w, max(out_w, w + 1), (), generator=generator))
        resized = F.interpolate(x, size=(rh, rw), mode="nearest")
        top = int(torch.randint(0, out_h - rh + 1, (), generator=generator)) if out_h > rh else 0
        left = int(torch.randint(0, out_w - rw + 1, (), generator=generator)) if out_w > rw else 0
        return F.pad(resized, (left, max(out_w - rw - left, 0), top, max(out_h - rh - top, 0)))

    return transform


def run_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "linf",
    eps: float = 8 / 255,
    steps: int = 10,
    step_size: float | None = None,
    rand_init: bool = False,
    momentum: float = 0.0,
    diversity: float = 0.0,
    targeted: bool = False,
    loss: str = "ce",
    kappa: float = 0.0,
    generator: torch.Generator | None = None,
) -> AttackOutput:
    """The common driver of the gradient attacks (see the module docstring).

    Raises:
        InputError / ShapeError: bad budget, labels or loss.
    """
    from advsr.attacks.objectives import cw_margin

    _check_inputs(x, y, eps)
    check_positive_int(steps, "steps")
    if norm not in ("linf", "l2"):
        raise InputError(f"norm must be 'linf' or 'l2', got {norm!r}")
    budget = Budget(norm, float(eps), steps, step_size)  # type: ignore[arg-type]
    if loss == "ce":
        objective = cross_entropy(model, y, targeted=targeted)
    elif loss == "cw":
        objective = cw_margin(model, y, kappa=kappa, targeted=targeted)
    else:
        raise InputError(f"unknown loss {loss!r}; use 'ce' or 'cw'")
    transform = input_diversity(diversity, generator=generator) if diversity > 0 else None
    with eval_mode(model):
        start = random_start(x, budget, generator) if rand_init else None
        res = run_steps(objective, x, budget, start=start, momentum=momentum, transform=transform)
        return _finish(model, x, res.x, y, budget, targeted)


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack: fixed settings over :func:`run_attack` and a description."""

    settings: dict[str, Any]
    description: str

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        steps: int = 10,
        targeted: bool = False,
        loss: str = "ce",
        kappa: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> AttackOutput:
        """Run the attack; ``loss`` is ``ce`` (cross-entropy) or ``cw`` (C&W margin, ``kappa``)."""
        s = dict(self.settings)
        n = 1 if s.pop("single_step", False) else check_positive_int(steps, "steps")
        size = s.pop("step_rule", "eps/steps")
        step = {"eps": eps, "eps/steps": eps / n, "2.5eps/steps": 2.5 * eps / n}[str(size)]
        return run_attack(
            model,
            x,
            y,
            eps=eps,
            steps=n,
            step_size=step,
            targeted=targeted,
            loss=loss,
            kappa=kappa,
            generator=generator,
            **s,
        )


ATTACKS: Registry[AttackEntry] = Registry("attack")
for _name, _settings, _help in (
    ("fgsm", {"single_step": True, "step_rule": "eps"}, "FGSM, one sign step of eps"),
    ("fgm-l2", {"single_step": True, "step_rule": "eps", "norm": "l2"}, "FGM, one L2 step"),
    ("ifgsm", {}, "I-FGSM / BIM, sign steps of eps/steps"),
    ("bim", {}, "alias of ifgsm"),
    ("pgd", {"rand_init": True, "step_rule": "2.5eps/steps"}, "PGD L-inf, random start"),
    ("pgd-l2", {"rand_init": True, "step_rule": "2.5eps/steps", "norm": "l2"}, "PGD L2"),
    ("mi-fgsm", {"momentum": 1.0}, "MI-FGSM, momentum 1.0"),
    ("di2-fgsm", {"diversity": 0.5}, "DI2-FGSM, input diversity p = 0.5"),
    ("mdi2-fgsm", {"diversity": 0.5, "momentum": 1.0}, "M-DI2-FGSM"),
):
    ATTACKS.register(_name, AttackEntry(_settings, _help), _help)
