"""The one gradient-step engine shared by every attack (SR and classifier).

An attack maximises a per-sample objective ``loss(x) -> (N,)`` over inputs ``x`` near ``x0``:

1. optional random start inside the budget (uniform in the L-inf box, or uniform in the L2
   ball), drawn from an explicit ``torch.Generator``;
2. ``T`` steps: gradient of ``loss(transform(x)).sum()`` with respect to ``x`` only
   (``torch.autograd.grad``; model parameters never get ``.grad``); optional momentum with
   per-sample L1-normalised gradients (MI-FGSM); the step direction is the sign (L-inf) or
   the per-sample L2-normalised gradient (L2), times an optional per-pixel mask;
3. after each step: clip to ``[0, 1]``, then project onto the budget around ``x0`` (the
   order of Choi et al.'s basic attack: ``clip_{-a,a}(clip_{0,1}(x~) - x0) + x0``, which stays
   in ``[0, 1]`` because ``x0`` does); with a mask, the perturbation is exactly zero outside.

``x0`` is never modified. The caller owns model modes; see :func:`advsr.modes.eval_mode`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from advsr import memory, progress
from advsr.errors import InputError, ShapeError
from advsr.types import Budget

__all__ = [
    "ModelObjective",
    "Objective",
    "StepResult",
    "input_grad",
    "project",
    "random_start",
    "run_steps",
]

Objective = Callable[[torch.Tensor], torch.Tensor]
"""Per-sample loss to maximise: ``(N, C, H, W) -> (N,)``."""

GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``x -> (per-sample loss (N,), gradient of its sum w.r.t. x)``, for objectives that
accumulate gradients themselves (e.g. a universal perturbation over mini-batches)."""


class ModelObjective:
    """A per-image objective read off a model's output: ``objective(x) =
    of_output(model(x), rows)``, each image's value from its own output row.

    Knowing the model lets :func:`run_steps` take each step's gradient one micro-batch at a
    time, forward and backward together (:func:`advsr.memory.value_and_grad`), when the
    model plans its passes in micro-batches (:class:`advsr.memory.MicroBatched`, a defended
    classifier): one forward and one backward per step within the memory budget.

    Args:
        model: the attacked model.
        of_output: ``(outputs of some rows, those rows as a slice) -> (k,)``.

    Shape:
        ``(N, C, H, W)`` -> ``(N,)``.
    """

    def __init__(
        self, model: nn.Module, of_output: Callable[[torch.Tensor, slice], torch.Tensor]
    ) -> None:
        self.model = model
        self.of_output = of_output

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.of_output(self.model(x), slice(0, x.shape[0]))


@dataclass(frozen=True)
class StepResult:
    """The final iterate, the objective after each step (``(T, N)``), and per image whether
    the first step's gradient was exactly zero (``max |g| <= 1e-10``; None when the first
    step did not start at ``x0``, or went through a transform), which the gradient-masking
    probes reuse instead of taking that gradient again."""

    x: torch.Tensor
    losses: torch.Tensor
    grad_zero_at_x0: torch.Tensor | None = None


def input_grad(out: torch.Tensor, x: torch.Tensor, *, retain_graph: bool = False) -> torch.Tensor:
    """``d out / d x``; zeros when ``out`` does not depend on ``x`` through a differentiable
    path (a model that rounds or thresholds its input: its gradient is masked, which the
    evaluation checks report, and the attack then simply does not move).

    Shape:
        scalar ``out`` and ``x`` -> like ``x``.
    """
    if not out.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(out, x, retain_graph=retain_graph, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def _per_sample_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    return t.flatten(1).norm(p=p, dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def project(x: torch.Tensor, x0: torch.Tensor, budget: Budget) -> torch.Tensor:
    """Project ``x`` onto the budget ball around ``x0`` (L-inf box or L2 ball).

    Shape:
        ``(N, C, H, W)`` x2 -> same.
    """
    delta = x - x0
    if budget.norm == "linf":
        delta = delta.clamp(-budget.eps, budget.eps)
    else:
        norm = _per_sample_norm(delta, 2)
        delta = delta * torch.clamp(budget.eps / norm, max=1.0)
    return x0 + delta


def random_start(
    x0: torch.Tensor, budget: Budget, generator: torch.Generator | None
) -> torch.Tensor:
    """A uniform random point of the budget ball around ``x0``, clipped to ``[0, 1]``.

    Randomness is drawn on the CPU from ``generator`` (reproducible on any device).
    """
    shape = x0.shape
    if budget.norm == "linf":
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        delta = (2 * u - 1) * budget.eps
    else:  # uniform in the L2 ball: gaussian direction, radius eps * U^(1/d)
        g = torch.randn(shape, generator=generator, dtype=torch.float64)
        d = g[0].numel()
        r = torch.rand(shape[0], generator=generator, dtype=torch.float64) ** (1.0 / d)
        delta = g / _per_sample_norm(g, 2) * (budget.eps * r).view(-1, 1, 1, 1)
    delta = delta.to(device=x0.device, dtype=x0.dtype)
    return (x0 + delta).clamp(0.0, 1.0)


def _check_loss(loss: torch.Tensor, x0: torch.Tensor) -> None:
    if loss.ndim != 1 or loss.shape[0] != x0.shape[0]:
        raise ShapeError(f"objective must return one value per image, got {tuple(loss.shape)}")


def run_steps(
    loss_fn: Objective | None,
    x0: torch.Tensor,
    budget: Budget,
    *,
    start: torch.Tensor | None = None,
    momentum: float = 0.0,
    mask: torch.Tensor | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    grad_fn: GradFn | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> StepResult:
    """Run ``budget.steps`` projected gradient-ascent steps on ``loss_fn`` from ``start``.

    Args:
        loss_fn: per-sample objective to maximise.
        x0: clean inputs in ``[0, 1]`` (not modified).
        budget: norm, radius ``eps``, steps ``T`` and step size (``eps / T`` by default).
        start: first iterate (``x0`` when None; see :func:`random_start`).
        momentum: decay ``mu`` of accumulated L1-normalised gradients (0: plain steps).
        mask: per-pixel mask broadcastable to ``x0`` (1 = may change); the perturbation is
            exactly zero where it is 0.
        transform: differentiable input transform applied before the objective (e.g.
            input diversity); the gradient flows through it.
        grad_fn: instead of ``loss_fn``, a function returning the loss and its gradient
            (for objectives that accumulate over mini-batches).
        bounds: value range iterates are clipped to (``None``: no clipping, e.g. for a
            perturbation ``Delta`` optimised around ``x0 = 0``).

    Returns:
        the final iterate and the objective values ``(T, N)`` at each step's input.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim != 4 or not x0.is_floating_point():
        raise ShapeError("x0 must be a floating (N, C, H, W) tensor")
    if momentum < 0:
        raise InputError(f"momentum must be >= 0, got {momentum}")
    if mask is not None:
        try:
            mask = torch.broadcast_to(mask.to(x0.device, x0.dtype), x0.shape)
        except RuntimeError:
            raise ShapeError(
                f"mask of shape {tuple(mask.shape)} does not fit inputs {tuple(x0.shape)}"
            ) from None
    x0 = x0.detach()
    x = (x0 if start is None else start.detach()).clone()
    if mask is not None:
        x = x0 + (x - x0) * mask
    acc = torch.zeros_like(x0)
    losses = []
    zero_at_x0 = None
    step_size = float(budget.step_size)  # type: ignore[arg-type]  # resolved: never None
    if (loss_fn is None) == (grad_fn is None):
        raise InputError("give exactly one of loss_fn and grad_fn")
    # one pass per step (forward and backward per micro-batch when the model plans its
    # passes, else one whole-batch pass); a transform (input diversity) is drawn once per
    # batch, so it keeps the plain path
    fused = isinstance(loss_fn, ModelObjective) and transform is None
    for i in range(budget.steps):
        progress.step(i, budget.steps)
        if grad_fn is not None:
            loss, grad = grad_fn(x)
        elif fused:
            assert isinstance(loss_fn, ModelObjective)
            loss, grad = memory.value_and_grad(loss_fn.model, x, loss_fn.of_output)
            _check_loss(loss, x0)
        else:
            assert loss_fn is not None
            xr = x.requires_grad_(True)
            loss = loss_fn(transform(xr) if transform is not None else xr)
            _check_loss(loss, x0)
            grad = input_grad(loss.sum(), xr)
        losses.append(loss.detach())
        if i == 0 and start is None and transform is None and grad_fn is None:
            zero_at_x0 = (grad.flatten(1).abs().amax(1) <= 1e-10).cpu()
        if momentum:
            acc = momentum * acc + grad / _per_sample_norm(grad, 1)
            grad = acc
        linf = budget.norm == "linf"
        direction = grad.sign() if linf else grad / _per_sample_norm(grad, 2)
        if mask is not None:
            direction = direction * mask
        with torch.no_grad():
            x = x + step_size * direction
            if bounds is not None:
                x = x.clamp(*bounds)
            x = project(x, x0, budget)
            if mask is not None:
                x = x0 + (x - x0) * mask
    return StepResult(x.detach(), torch.stack(losses) if losses else torch.empty(0), zero_at_x0)
