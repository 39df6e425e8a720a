"""Fixed-budget gradient attacks on classifiers, all on the step engine (:mod:`._loop`).

Registered in :data:`advsr.attacks.base.ATTACKS` (kind ``gradient``); the base enforces the
budget and ``[0, 1]`` on the returned examples and measures success on them.

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

``eps`` is the total budget; ``step_size`` (optional) overrides the attack's step rule.
The objective is cross-entropy (``loss="ce"``) or the C&W margin capped at ``kappa``
(``loss="cw"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BeforeValidator, Field
from torch import nn

from advsr.attacks._loop import Objective, random_start, run_steps
from advsr.attacks.base import AttackSettings, Raw, register_alias, register_attack
from advsr.attacks.objectives import cross_entropy, cw_margin
from advsr.errors import InputError
from advsr.types import Budget

__all__ = [
    "MAX_RESTARTS",
    "MAX_STEPS",
    "DiversitySettings",
    "GradientSettings",
    "MomentumSettings",
    "SingleStepSettings",
    "at_most",
    "classifier_objective",
    "gradient_attack",
    "input_diversity",
]


MAX_STEPS = 100_000
"""The most iterations of an iterative attack (PGD-10k is already far beyond published
evaluations; 100,000 steps take hours per batch on a CPU)."""
MAX_RESTARTS = 1_000
"""The most random restarts of an attack with a random start."""


def at_most(bound: int) -> BeforeValidator:
    """A pydantic before-validator refusing a number above ``bound`` with the bound in the
    message (pydantic's own int parsing refuses a float such as ``1e20`` without naming it).

    Example:
        >>> from typing import Annotated
        >>> from advsr.settings import Settings, validate
        >>> class S(Settings):
        ...     steps: Annotated[int, at_most(10)] = 1
        >>> validate(S, {"steps": 1e20})
        Traceback (most recent call last):
        ...
        advsr.errors.InputError: invalid steps: Input should be less than or equal to 10, got 1e+20
    """

    def check(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > bound:
            got = f"{value:g}" if isinstance(value, float) else str(value)
            raise ValueError(f"Input should be less than or equal to {bound}, got {got}")
        return value

    return BeforeValidator(check)


class SingleStepSettings(AttackSettings):
    """FGSM / FGM: one step of size ``eps``."""

    loss: Literal["ce", "cw"] = "ce"
    kappa: float = Field(0.0, ge=0.0)
    targeted: bool = False


class GradientSettings(SingleStepSettings):
    """Iterative attacks: ``steps`` steps; ``step_size`` None = the attack's rule;
    ``restarts`` runs from new random starts on the images not fooled yet (attacks with a
    random start only)."""

    steps: Annotated[int, at_most(MAX_STEPS)] = Field(10, ge=1, le=MAX_STEPS)
    step_size: float | None = Field(None, gt=0.0)
    restarts: Annotated[int, at_most(MAX_RESTARTS)] = Field(1, ge=1, le=MAX_RESTARTS)

    identity_defaults: ClassVar[dict[str, Any]] = {"restarts": 1}


class MomentumSettings(GradientSettings):
    """MI-FGSM: decay ``momentum`` of the accumulated normalised gradients."""

    momentum: float = Field(1.0, ge=0.0)


class DiversitySettings(GradientSettings):
    """DI2-FGSM: input diversity with probability ``diversity`` (and optional momentum)."""

    diversity: float = Field(0.5, ge=0.0, le=1.0)
    momentum: float = Field(0.0, ge=0.0)


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


def classifier_objective(
    model: nn.Module, y: torch.Tensor, loss: str, kappa: float, targeted: bool
) -> Objective:
    """Cross-entropy (``ce``) or the C&W margin capped at ``kappa`` (``cw``), per image."""
    if loss == "cw":
        return cw_margin(model, y, kappa=kappa, targeted=targeted)
    return cross_entropy(model, y, targeted=targeted)


StepRule = Literal["eps", "eps/steps", "2.5eps/steps"]


def gradient_attack(norm: str, rule: StepRule, *, rand_init: bool = False) -> Any:
    """The core of a gradient attack with a step rule (``eps``, ``eps/steps`` or
    ``2.5eps/steps``) and optional random start; momentum and diversity come from the
    settings when the settings have them."""

    def core(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor | None,
        eps: float | None,
        s: Any,
        generator: torch.Generator | None,
    ) -> Raw:
        assert y is not None and eps is not None
        steps = int(getattr(s, "steps", 1))
        default = {"eps": eps, "eps/steps": eps / steps, "2.5eps/steps": 2.5 * eps / steps}[rule]
        step = getattr(s, "step_size", None) or default
        budget = Budget(norm, eps, steps, step)  # type: ignore[arg-type]
        diversity = float(getattr(s, "diversity", 0.0))
        transform = input_diversity(diversity, generator=generator) if diversity > 0 else None
        restarts = int(getattr(s, "restarts", 1))
        if restarts > 1 and not rand_init:
            raise InputError("restarts need an attack with a random start (pgd, pgd-l2, apgd)")

        def run(xs: torch.Tensor, ys: torch.Tensor) -> Any:
            start = random_start(xs, budget, generator) if rand_init else None
            return run_steps(
                classifier_objective(model, ys, s.loss, s.kappa, s.targeted),
                xs,
                budget,
                start=start,
                momentum=float(getattr(s, "momentum", 0.0)),
                transform=transform,
            )

        res = run(x, y)
        x_adv, losses = res.x.clone(), res.losses
        for _ in range(restarts - 1):
            with torch.no_grad():
                hit = model(x_adv).argmax(1) == y if s.targeted else model(x_adv).argmax(1) != y
            todo = (~hit).nonzero()[:, 0]
            if len(todo) == 0:
                break
            again = run(x[todo], y[todo])
            with torch.no_grad():
                pred = model(again.x).argmax(1)
            won = pred == y[todo] if s.targeted else pred != y[todo]
            x_adv[todo[won]] = again.x[won]
        diagnostics: dict[str, Any] = {"losses": losses}
        if res.grad_zero_at_x0 is not None and s.loss == "ce" and not s.targeted:
            diagnostics["grad_zero"] = res.grad_zero_at_x0.float()  # reused by the probes
        return Raw(x_adv, diagnostics=diagnostics)

    return core


def _diverse(s: Any) -> bool:
    return bool(s.diversity > 0)


class MDI2Settings(DiversitySettings):
    """M-DI2-FGSM: input diversity and momentum 1.0."""

    momentum: float = Field(1.0, ge=0.0)


# name, norm, settings, step rule, random start, stochastic, description, paper
_TABLE: tuple[tuple[str, str, type[AttackSettings], StepRule, bool, Any, str, str], ...] = (
    ("fgsm", "linf", SingleStepSettings, "eps", False, False, "FGSM, one sign step of eps",
     "Goodfellow et al. 2015"),
    ("fgm-l2", "l2", SingleStepSettings, "eps", False, False, "FGM, one L2 step of length eps",
     "Goodfellow et al. 2015"),
    ("ifgsm", "linf", GradientSettings, "eps/steps", False, False,
     "I-FGSM, sign steps of eps/steps", "Kurakin et al. 2017"),
    ("bim", "linf", GradientSettings, "eps/steps", False, False, "BIM, the same attack as ifgsm",
     "Kurakin et al. 2017"),
    ("pgd", "linf", GradientSettings, "2.5eps/steps", True, True,
     "PGD L-inf, random start, steps of 2.5 eps/steps", "Madry et al. 2018"),
    ("pgd-l2", "l2", GradientSettings, "2.5eps/steps", True, True,
     "PGD L2, random start, steps of 2.5 eps/steps", "Madry et al. 2018"),
    ("mi-fgsm", "linf", MomentumSettings, "eps/steps", False, False, "MI-FGSM, momentum 1.0",
     "Dong et al. 2018"),
    ("di2-fgsm", "linf", DiversitySettings, "eps/steps", False, _diverse,
     "DI2-FGSM, input diversity p = 0.5", "Xie et al. 2019"),
    ("mdi2-fgsm", "linf", MDI2Settings, "eps/steps", False, _diverse,
     "M-DI2-FGSM, diversity 0.5 and momentum 1.0", "Xie et al. 2019"),
)  # fmt: skip
for _name, _norm, _settings, _rule, _rand, _stoch, _help, _paper in _TABLE:
    register_attack(
        _name,
        kind="gradient",
        domain="classifier",
        norm=_norm,  # type: ignore[arg-type]
        settings=_settings,
        core=gradient_attack(_norm, _rule, rand_init=_rand),
        description=_help,
        stochastic=_stoch,
        reference=_paper,
    )

# torchattacks' names (FGSM, BIM and PGD are the names here already, in any case)
register_alias("pgdl2", "pgd-l2", source="torchattacks")
register_alias("mifgsm", "mi-fgsm", source="torchattacks")
register_alias("difgsm", "di2-fgsm", source="torchattacks")
register_alias("fgm", "fgm-l2", source="cleverhans")
