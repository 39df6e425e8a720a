"""APGD (Croce and Hein 2020): step-size-free PGD with momentum and checkpoints that halve
the step, for classifiers (CE, DLR, targeted DLR over the top classes) and SR objectives.

Algorithm 1 of the paper, per image:

* start: a random point of the budget ball (L-inf: ``x0 + eps t / max|t|``, ``t`` uniform in
  ``[-1, 1]``; L2: ``x0 + eps g / ||g||``, ``g`` Gaussian; as the reference code), clipped to
  ``[0, 1]``; step ``eta = 2 eps``;
* ``z = P(x_k + eta s(grad))`` (``s``: sign for L-inf, L2-normalised for L2), then the
  momentum step ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))`` with ``a = 0.75``
  (``a = 1`` at the first step); ``P`` projects onto the ball and ``[0, 1]``;
* checkpoints ``w_j`` after ``0.22 N`` iterations, then at intervals shrinking by ``0.03 N``
  down to ``0.06 N`` (:func:`apgd_checkpoints`); at each, the step is halved and the
  iterate reset to the best point so far when (1) the objective increased in fewer than
  ``rho = 0.75`` of the steps since the last checkpoint, or (2) the step was not halved at
  the last checkpoint and the best objective has not improved since.

Condition (1) counts ``f(x_{i+1}) > f(x_i)`` from ``x_0`` (the random start) as the paper
writes it; the reference code compares its first iterate against a zero-filled buffer
instead, which counts a first step of positive loss (CE) as an increase and of negative loss
(DLR) as none.

Returned example: the last iterate that fooled the classifier (as the reference code's
``x_best_adv``), else the point of highest loss (the reference code returns the clean image
for those; the highest-loss point is what a defense or a transfer target should see).
Restarts run again from new random points on the images not yet fooled. APGD-T runs the
targeted DLR loss towards each of the ``targets`` classes ranked after the prediction on the
clean image, one target after another, on the images not yet fooled.

Randomised (defended) models are attacked through :func:`advsr.defenses.adaptive.adaptive`,
whose EOT averages the class probabilities over draws: the expected prediction is what APGD
then optimises (AutoAttack's ``version='rand'`` averages gradients over 20 draws instead).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from advsr import progress
from advsr.attacks._loop import ModelObjective, StepResult, input_grad, project
from advsr.attacks.base import AttackSettings, Raw, register_alias, register_attack
from advsr.attacks.classifier import at_most
from advsr.memory import value_and_grad
from advsr.types import Budget

__all__ = [
    "MAX_RESTARTS",
    "MAX_STEPS",
    "MAX_TARGETS",
    "APGDSettings",
    "APGDTSettings",
    "apgd_checkpoints",
    "apgd_run",
    "apgd_steps",
    "dlr_loss",
    "dlr_targeted_loss",
]

Norm = Literal["linf", "l2"]
LogitLoss = Callable[[torch.Tensor, slice], torch.Tensor]
"""``(logits of some rows, those rows as a slice of the batch) -> (k,)`` per-image loss."""


MAX_STEPS = 100_000
"""The most APGD iterations (the paper's evaluations use 100)."""
MAX_RESTARTS = 1_000
"""The most random restarts."""
MAX_TARGETS = 1_000
"""The most target classes of APGD-T (at most the classes less one are used)."""


class APGDSettings(AttackSettings):
    """APGD: ``steps`` iterations, ``restarts`` random restarts, the loss to maximise."""

    loss: Literal["ce", "dlr", "cw"] = "ce"
    steps: Annotated[int, at_most(MAX_STEPS)] = Field(100, ge=1, le=MAX_STEPS)
    restarts: Annotated[int, at_most(MAX_RESTARTS)] = Field(1, ge=1, le=MAX_RESTARTS)
    rho: float = Field(0.75, gt=0.0, le=1.0)
    """Checkpoint condition 1: the share of steps that must have increased the loss."""
    kappa: float = Field(0.0, ge=0.0)
    """C&W loss only: the margin cap."""


class APGDTSettings(APGDSettings):
    """APGD-T: the targeted DLR loss towards each of the top ``targets`` other classes."""

    loss: Literal["dlr"] = "dlr"
    targets: Annotated[int, at_most(MAX_TARGETS)] = Field(9, ge=1, le=MAX_TARGETS)


def apgd_checkpoints(steps: int) -> list[int]:
    """After how many iterations APGD checks its step size: the first check after
    ``max(int(0.22 N), 1)`` iterations, each next interval shorter by ``max(int(0.03 N), 1)``
    down to ``max(int(0.06 N), 1)`` (the reference code's integer form of the paper's
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``).

    Example:
        >>> apgd_checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    k = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, done = [], k
    while done <= steps:
        out.append(done)
        k = max(k - shrink, shortest)
        done += k
    return out


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``
    (``pi``: logits sorted in decreasing order). Shift- and scale-invariant.

    Shape:
        ``(N, K)``, ``(N,)`` -> ``(N,)``.
    """
    z, _ = logits.sort(dim=1, descending=True)
    zy = logits.gather(1, y[:, None])[:, 0]
    top_is_y = logits.argmax(1) == y
    other = torch.where(top_is_y, z[:, 1], z[:, 0])
    return -(zy - other) / (z[:, 0] - z[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Targeted DLR: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``.

    Shape:
        ``(N, K)``, ``(N,)``, ``(N,)`` -> ``(N,)``.
    """
    z, _ = logits.sort(dim=1, descending=True)
    zy = logits.gather(1, y[:, None])[:, 0]
    zt = logits.gather(1, t[:, None])[:, 0]
    return -(zy - zt) / (z[:, 0] - 0.5 * (z[:, 2] + z[:, 3]) + 1e-12)


def _norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    return grad.sign() if norm == "linf" else grad / _norm(grad)


def apgd_start(
    x0: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator | None
) -> torch.Tensor:
    """APGD's random start (see the module docstring), drawn on the CPU from ``generator``.

    Shape:
        ``(N, C, H, W)`` -> same.
    """
    if norm == "linf":
        t = 2 * torch.rand(x0.shape, generator=generator, dtype=torch.float64) - 1
        t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    else:
        t = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        t = t / _norm(t)
    return (x0 + eps * t.to(x0.device, x0.dtype)).clamp(0.0, 1.0)


def apgd_run(
    value_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    x0: torch.Tensor,
    eps: float,
    norm: Norm,
    steps: int,
    *,
    rho: float = 0.75,
    generator: torch.Generator | None = None,
    start: torch.Tensor | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One APGD run (Algorithm 1) on a batch.

    Args:
        value_and_grad: ``x -> (loss (N,), gradient of its sum, fooled (N,) bool)``.
        x0: clean inputs (not modified).
        eps: radius; ``norm``: ``linf`` or ``l2``.
        steps: iterations ``N``.
        rho: checkpoint condition 1's share.
        generator: draws the random start (ignored when ``start`` is given).
        start: first iterate instead of the random start.
        bounds: the value range (None: no clipping, for a perturbation around 0).
        mask: per-pixel mask (1 = may change); the perturbation is exactly zero elsewhere.

    Returns:
        ``x_best`` (highest loss), ``x_adv`` (last fooling iterate, else ``x_best``),
        ``fooled`` (any iterate fooled), ``loss_best`` and the loss trace ``losses``
        ``(steps + 1, N)`` (the start first).

    Shape:
        ``(N, C, H, W)`` -> the tensors above.
    """
    x0 = x0.detach()
    budget = Budget(norm, eps, steps, eps)

    def proj(x: torch.Tensor) -> torch.Tensor:
        if bounds is not None:
            x = x.clamp(*bounds)
        x = project(x, x0, budget)
        x = x.clamp(*bounds) if bounds is not None else x
        return x if mask is None else x0 + (x - x0) * mask

    x = proj(start if start is not None else apgd_start(x0, eps, norm, generator))
    loss, grad, fooled = value_and_grad(x)
    x_best, loss_best, grad_best = x.clone(), loss.clone(), grad.clone()
    x_adv = torch.where(fooled.view(-1, 1, 1, 1), x, x_best)
    ever = fooled.clone()
    n = x0.shape[0]
    shape = (n, *([1] * (x0.ndim - 1)))
    eta = torch.full(shape, 2.0 * eps, dtype=x0.dtype, device=x0.device)
    x_prev = x.clone()
    trace = [loss.detach()]
    checks = set(apgd_checkpoints(steps))
    last = 0
    halved_last = torch.ones(n, dtype=torch.bool, device=x0.device)
    best_at_last = loss_best.clone()
    for k in range(steps):
        progress.step(k, steps)
        with torch.no_grad():
            a = 1.0 if k == 0 else 0.75
            step = _direction(grad if mask is None else grad * mask, norm)
            z = proj(x + eta * step)
            x_new = proj(x + a * (z - x) + (1 - a) * (x - x_prev))
            x_prev, x = x, x_new
        loss, grad, fooled = value_and_grad(x)
        trace.append(loss.detach())
        with torch.no_grad():
            x_adv = torch.where(fooled.view(-1, 1, 1, 1), x, x_adv)
            ever |= fooled
            better = loss > loss_best
            x_best = torch.where(better.view(-1, 1, 1, 1), x, x_best)
            grad_best = torch.where(better.view(-1, 1, 1, 1), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)
            done = k + 1
            if done in checks:
                window = torch.stack(trace[last : done + 1])
                increased = (window[1:] > window[:-1]).float().sum(0)
                cond1 = increased < rho * (done - last)
                cond2 = ~halved_last & (loss_best <= best_at_last)
                halve = cond1 | cond2
                eta = torch.where(halve.view(shape), eta / 2, eta)
                x = torch.where(halve.view(shape), x_best, x)
                grad = torch.where(halve.view(shape), grad_best, grad)
                halved_last, best_at_last, last = halve, loss_best.clone(), done
    x_adv = torch.where(ever.view(-1, 1, 1, 1), x_adv, x_best)
    return {
        "x_best": x_best.detach(),
        "x_adv": x_adv.detach(),
        "fooled": ever,
        "loss_best": loss_best.detach(),
        "losses": torch.stack(trace),
    }


def apgd_steps(
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    x0: torch.Tensor,
    budget: Budget,
    *,
    start: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    grad_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> StepResult:
    """APGD on an objective with nothing to fool (SR attacks): the point of highest loss
    after ``budget.steps`` iterations, from ``start`` (``x0`` when None), as a
    :class:`~advsr.attacks._loop.StepResult` (losses ``(T + 1, N)``, the start first).

    Shape:
        ``(N, C, H, W)`` -> same.
    """

    def vg(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if grad_fn is not None:
            loss, g = grad_fn(x)
        elif isinstance(loss_fn, ModelObjective):  # one pass per micro-batch
            loss, g = value_and_grad(loss_fn.model, x, loss_fn.of_output)
        else:
            assert loss_fn is not None
            xr = x.detach().requires_grad_(True)
            loss = loss_fn(xr)
            g = input_grad(loss.sum(), xr)
        none = torch.zeros(loss.shape[0], dtype=torch.bool, device=x.device)
        return loss.detach(), g.detach(), none

    first = x0 if start is None else start
    norm: Norm = "linf" if budget.norm == "linf" else "l2"
    out = apgd_run(vg, x0, budget.eps, norm, budget.steps, start=first, bounds=bounds, mask=mask)
    return StepResult(out["x_best"], out["losses"])


def _logit_value_and_grad(
    model: nn.Module, loss_fn: LogitLoss, y: torch.Tensor
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Loss, input gradient and whether each image is misclassified, from one forward and
    one backward per micro-batch (:func:`advsr.memory.value_and_grad`)."""

    def vg(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        wrong = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

        def of_logits(z: torch.Tensor, rows: slice) -> torch.Tensor:
            wrong[rows] = z.detach().argmax(1) != y[rows]
            return loss_fn(z, rows)

        loss, g = value_and_grad(model, x, of_logits)
        return loss, g, wrong

    return vg


def _classifier_loss(s: Any, y: torch.Tensor) -> LogitLoss:
    import torch.nn.functional as F

    if s.loss == "dlr":
        return lambda z, r: dlr_loss(z, y[r])
    if s.loss == "cw":
        from advsr.attacks.objectives import margin_of

        return lambda z, r: margin_of(z, y[r], kappa=s.kappa)
    return lambda z, r: F.cross_entropy(z, y[r], reduction="none")


def _loss_for(s: Any, y: torch.Tensor, target: torch.Tensor | None) -> LogitLoss:
    if target is None:
        return _classifier_loss(s, y)
    return lambda z, r: dlr_targeted_loss(z, y[r], target[r])


def _apgd_core(norm: Norm, targeted: bool) -> Any:
    def core(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor | None,
        eps: float | None,
        s: Any,
        generator: torch.Generator | None,
    ) -> Raw:
        assert y is not None and eps is not None
        x_out = x.detach().clone()
        best_loss = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        losses: list[torch.Tensor] = []
        broke_at = torch.full((x.shape[0],), -1, dtype=torch.long)
        runs: list[tuple[str, torch.Tensor | None]] = []
        if targeted:
            with torch.no_grad():
                order = model(x).argsort(dim=1, descending=True)
            k = min(s.targets, order.shape[1] - 1)
            runs = [(f"target {j}", order[:, j]) for j in range(1, k + 1)]
        else:
            runs = [("untargeted", None)]
        step = 0
        for _, target in runs:
            for _ in range(s.restarts):
                todo = (~fooled).nonzero()[:, 0]
                if len(todo) == 0:
                    break
                yy = y[todo]
                tt = None if target is None else target[todo]
                vg = _logit_value_and_grad(model, _loss_for(s, yy, tt), yy)
                out = apgd_run(vg, x[todo], eps, norm, s.steps, rho=s.rho, generator=generator)
                newly = out["fooled"]
                improve = newly | (~fooled[todo] & (out["loss_best"] > best_loss[todo]))
                sel = todo[improve]
                x_out[sel] = out["x_adv"][improve]
                best_loss[todo] = torch.maximum(best_loss[todo], out["loss_best"])
                broke_at[todo[newly].cpu()] = step
                fooled[todo[newly]] = True
                full = torch.full((s.steps + 1, x.shape[0]), math.nan, dtype=x.dtype)
                full[:, todo.cpu()] = out["losses"].cpu()
                losses.append(full)
                step += 1
        diagnostics = {"losses": torch.cat(losses) if losses else torch.empty(0), "run": broke_at}
        return Raw(x_out, diagnostics=diagnostics)

    return core


for _name, _ball, _targeted, _settings, _help in (
    ("apgd", "linf", False, APGDSettings, "APGD L-inf (CE, DLR or C&W loss), step-size free"),
    ("apgd-l2", "l2", False, APGDSettings, "APGD L2 (CE, DLR or C&W loss), step-size free"),
    ("apgd-t", "linf", True, APGDTSettings, "APGD-T L-inf, targeted DLR over the top classes"),
    ("apgd-t-l2", "l2", True, APGDTSettings, "APGD-T L2, targeted DLR over the top classes"),
):
    register_attack(
        _name,
        kind="gradient",
        domain="classifier",
        norm=_ball,  # type: ignore[arg-type]
        settings=_settings,
        core=_apgd_core(_ball, _targeted),  # type: ignore[arg-type]
        description=_help,
        stochastic=True,
        reference="Croce and Hein 2020",
    )

# AutoAttack's names (apgd-ce, apgd-dlr, apgd-t) and torchattacks' (APGD, APGDT)
register_alias("apgd-ce", "apgd", source="AutoAttack", loss="ce")
register_alias("apgd-dlr", "apgd", source="AutoAttack", loss="dlr")
register_alias("apgdt", "apgd-t", source="torchattacks")
