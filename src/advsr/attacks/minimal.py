"""Minimal-perturbation attacks on classifiers: DeepFool and Carlini-Wagner L2.

Both search for the smallest perturbation that changes the decision (no budget); the result
is in ``[0, 1]`` and success is measured on it.

* DeepFool (Moosavi-Dezfooli et al. 2016), multi-class: at each iteration linearise the
  classifier, step to the nearest linearised boundary among the classes, accumulate; the
  final perturbation is scaled by ``1 + overshoot`` (0.02). Batched: every image of the batch
  moves in the same tensor ops and stops on its own (a per-image ``active`` mask), with one
  gradient pass per candidate class (the ``candidates`` highest logits of the clean image).
* C&W L2 (Carlini & Wagner 2017): in tanh space ``x = (tanh(w) + 1) / 2``, Adam minimises
  ``||x - x0||_2^2 + c * max(Z_y - max_{j != y} Z_j, -kappa)``; a per-image binary search
  over ``c`` (start ``initial_const``, x10 until success, then bisection) keeps the smallest
  successful example of each image.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from advsr import progress
from advsr.attacks._loop import input_grad
from advsr.attacks.base import (
    AttackResult,
    AttackSettings,
    Raw,
    create_attack,
    register_alias,
    register_attack,
)
from advsr.attacks.classifier import at_most
from advsr.attacks.objectives import _check_labels

__all__ = [
    "MAX_BINARY_SEARCH_STEPS",
    "MAX_CANDIDATES",
    "MAX_STEPS",
    "CWSettings",
    "DeepFoolSettings",
    "carlini_wagner_l2",
    "deepfool",
]

MAX_STEPS = 100_000
"""The most DeepFool linearisations or C&W Adam steps per constant."""
MAX_BINARY_SEARCH_STEPS = 100
"""The most C&W constants tried (each search step halves the constant's interval)."""
MAX_CANDIDATES = 10_000
"""The most candidate classes of DeepFool (one gradient pass each per step)."""


class DeepFoolSettings(AttackSettings):
    """DeepFool: at most ``steps`` linearisations, final ``(1 + overshoot) r``, the true
    class and the ``candidates - 1`` highest other logits of the clean image."""

    steps: Annotated[int, at_most(MAX_STEPS)] = Field(50, ge=1, le=MAX_STEPS)
    overshoot: float = Field(0.02, ge=0.0)
    candidates: Annotated[int, at_most(MAX_CANDIDATES)] = Field(10, ge=2, le=MAX_CANDIDATES)
    targeted: bool = False


class CWSettings(AttackSettings):
    """C&W L2: ``steps`` Adam steps (``lr``) per constant, ``binary_search_steps`` constants
    starting at ``initial_const``, confidence ``kappa``."""

    steps: Annotated[int, at_most(MAX_STEPS)] = Field(100, ge=1, le=MAX_STEPS)
    binary_search_steps: Annotated[int, at_most(MAX_BINARY_SEARCH_STEPS)] = Field(
        5, ge=1, le=MAX_BINARY_SEARCH_STEPS
    )
    initial_const: float = Field(1e-2, gt=0.0)
    kappa: float = Field(0.0, ge=0.0)
    lr: float = Field(0.01, gt=0.0)
    targeted: bool = False


def _deepfool_core(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float | None,
    s: DeepFoolSettings,
    generator: torch.Generator | None,
) -> Raw:
    """Batched multi-class DeepFool (L2), see :func:`deepfool`."""
    assert y is not None
    steps, overshoot, candidates, targeted = s.steps, s.overshoot, s.candidates, s.targeted
    xr = x.clone().requires_grad_(True)
    z = model(xr)
    _check_labels(y, z)
    yy = y.to(z.device)
    k = 2 if targeted else min(candidates, z.shape[1])
    # reference class first (score +inf), then the highest other logits of the clean image
    cand = z.detach().scatter(1, yy[:, None], float("inf")).argsort(1, descending=True)
    cand = cand[:, :k]
    r_tot = torch.zeros_like(x)
    x_adv = x.clone()
    active = torch.arange(x.shape[0], device=x.device)  # images not done yet
    used = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for it in range(steps):
        progress.step(it, steps, "DeepFool step")
        if it:
            xr = x_adv[active].requires_grad_(True)
            z = model(xr)
        pred = z.argmax(dim=1)
        done = pred == yy[active] if targeted else pred != yy[active]
        if bool(done.any()):
            active = active[~done]
            if active.numel() == 0:
                break
            xr = x_adv[active].requires_grad_(True)
            z = model(xr)  # the backward passes run on the remaining images only
            pred = z.argmax(dim=1)
        # classes[:, 0] is the class to leave, classes[:, 1:] the boundaries to reach
        classes = torch.stack([pred, yy[active]], 1) if targeted else cand[active]
        zc = z.gather(1, classes)  # (n, k)
        grads = [input_grad(zc[:, j].sum(), xr, retain_graph=j < k - 1) for j in range(k)]
        gr = torch.stack(grads, dim=1)  # (n, k, C, H, W)
        w = gr[:, 1:] - gr[:, :1]
        f = (zc[:, 1:] - zc[:, :1]).detach()
        wn = w.flatten(2).norm(dim=2).clamp_min(1e-12)  # (n, k-1)
        dist = f.abs() / wn
        best = dist.argmin(dim=1)
        idx = torch.arange(active.shape[0], device=x.device)
        step = ((dist[idx, best] + 1e-4) / wn[idx, best]).view(-1, 1, 1, 1) * w[idx, best]
        r_tot[active] = r_tot[active] + step
        used[active] += 1
        x_adv[active] = (x[active] + (1 + overshoot) * r_tot[active]).clamp(0.0, 1.0)
    return Raw(x_adv.detach(), diagnostics={"iterations": used.cpu()})


def _cw_core(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float | None,
    s: CWSettings,
    generator: torch.Generator | None,
) -> Raw:
    """Carlini-Wagner L2 with a per-image binary search over ``c``, see
    :func:`carlini_wagner_l2`."""
    assert y is not None
    steps, binary_search_steps, initial_const = s.steps, s.binary_search_steps, s.initial_const
    kappa, lr, targeted = s.kappa, s.lr, s.targeted
    n = x.shape[0]
    dev = x.device
    lo = torch.zeros(n, device=dev)
    hi = torch.full((n,), float("inf"), device=dev)
    c = torch.full((n,), float(initial_const), device=dev)
    best_l2 = torch.full((n,), float("inf"), device=dev)
    best = x.clone()
    w0 = torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    with torch.no_grad():
        _check_labels(y, model(x[:1]).expand(n, -1) if n else model(x))
    yy = y.to(dev)
    onehot = None
    for search in range(binary_search_steps):
        progress.step(search, binary_search_steps, "C&W search")
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        fooled = torch.zeros(n, dtype=torch.bool, device=dev)
        for _ in range(steps):
            xa = (torch.tanh(w) + 1) / 2
            z = model(xa)
            if onehot is None:
                onehot = torch.nn.functional.one_hot(yy, z.shape[1]).bool()
            zy = z.gather(1, yy[:, None])[:, 0]
            other = z.masked_fill(onehot, float("-inf")).max(dim=1).values
            margin = other - zy if targeted else zy - other  # <= -kappa: success
            f = margin.clamp(min=-kappa)
            l2 = (xa - x).flatten(1).pow(2).sum(1)
            loss = (l2 + c * f).sum()
            (w.grad,) = torch.autograd.grad(loss, w)  # never into the model's parameters
            opt.step()
            with torch.no_grad():
                hit = z.argmax(dim=1) == yy
                ok = (hit if targeted else ~hit) & (margin <= -kappa)
                better = ok & (l2.sqrt() < best_l2)
                best_l2 = torch.where(better, l2.sqrt(), best_l2)
                best[better] = xa.detach()[better]
                fooled |= ok
        # binary search on c per image
        hi = torch.where(fooled, torch.minimum(hi, c), hi)
        lo = torch.where(fooled, lo, torch.maximum(lo, c))
        c = torch.where(torch.isinf(hi), c * 10, (lo + hi) / 2)
    return Raw(best.detach())


register_attack(
    "deepfool",
    kind="minimal",
    domain="classifier",
    norm="none",
    settings=DeepFoolSettings,
    core=_deepfool_core,
    description="DeepFool L2, overshoot 0.02, batched with per-image early stop",
    reference="Moosavi-Dezfooli et al. 2016",
)
register_attack(
    "cw-l2",
    kind="minimal",
    domain="classifier",
    norm="none",
    settings=CWSettings,
    core=_cw_core,
    description="Carlini-Wagner L2, binary search over c, best example kept",
    reference="Carlini and Wagner 2017",
)


def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **settings: Any) -> AttackResult:
    """Batched multi-class DeepFool (L2) through the attack base.

    Each iteration takes one forward pass of the images that are not done yet and one
    backward pass per candidate class; an image leaves the batch as soon as it is fooled
    (per-image early stop), and the next passes run on the remaining images only. Settings
    (:class:`DeepFoolSettings`): ``steps`` (maximum linearisations), ``overshoot`` (the final
    perturbation is ``(1 + overshoot) r_tot``), ``candidates`` (the true class and the
    highest other logits of the clean image, as in the reference implementation),
    ``targeted`` (step towards the boundary between the current class and ``y`` only).
    ``diagnostics["iterations"]`` counts each image's steps.

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackResult`.
    """
    return create_attack("deepfool", **settings)(model, x, y)


def carlini_wagner_l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, **settings: Any
) -> AttackResult:
    """Carlini-Wagner L2 through the attack base (settings: :class:`CWSettings`).

    Untargeted, ``f = max(Z_y - max_{j != y} Z_j, -kappa)``; targeted (``y`` = target
    labels), ``f = max(max_{j != t} Z_j - Z_t, -kappa)``. An example counts as successful
    when the decision is changed (reaches the target) with margin at least ``kappa``; images
    never fooled are returned unchanged.

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackResult`.
    """
    return create_attack("cw-l2", **settings)(model, x, y)


register_alias("cw", "cw-l2", source="torchattacks")
