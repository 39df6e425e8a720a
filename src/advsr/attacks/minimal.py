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

import torch
from torch import nn

from advsr.attacks._loop import eval_mode
from advsr.attacks.classifier import AttackOutput, _check_inputs
from advsr.attacks.objectives import _check_labels
from advsr.checks import check_non_negative, check_positive_int
from advsr.errors import InputError
from advsr.registry import Registry

__all__ = ["MINIMAL_ATTACKS", "carlini_wagner_l2", "deepfool"]


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
    targeted: bool = False,
) -> AttackOutput:
    """Batched multi-class DeepFool (L2).

    Each iteration takes one forward pass of the images that are not done yet and one
    backward pass per candidate class; an image leaves the batch as soon as it is fooled
    (per-image early stop), and the next passes run on the remaining images only.

    Args:
        model: classifier (logits).
        x: clean images in ``[0, 1]``.
        y: true labels, or target labels when ``targeted``.
        steps: maximum number of linearisation steps.
        overshoot: the final perturbation is ``(1 + overshoot) * r_tot``.
        candidates: classes considered (the true class and the highest other logits of the
            clean image, as in the reference implementation).
        targeted: step towards the boundary between the current class and ``y`` only (the
            targeted variant), stopping when the prediction is ``y``.

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackOutput`.
    """
    _check_inputs(x, y, 0.0)
    check_positive_int(steps, "steps")
    check_non_negative(overshoot, "overshoot")
    if not targeted and check_positive_int(candidates, "candidates") < 2:
        raise InputError(f"deepfool needs candidates >= 2, got {candidates}")
    x = x.detach()
    with eval_mode(model):
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
        for it in range(steps):
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
            grads = [
                torch.autograd.grad(zc[:, j].sum(), xr, retain_graph=j < k - 1)[0] for j in range(k)
            ]
            gr = torch.stack(grads, dim=1)  # (n, k, C, H, W)
            w = gr[:, 1:] - gr[:, :1]
            f = (zc[:, 1:] - zc[:, :1]).detach()
            wn = w.flatten(2).norm(dim=2).clamp_min(1e-12)  # (n, k-1)
            dist = f.abs() / wn
            best = dist.argmin(dim=1)
            idx = torch.arange(active.shape[0], device=x.device)
            step = ((dist[idx, best] + 1e-4) / wn[idx, best]).view(-1, 1, 1, 1) * w[idx, best]
            r_tot[active] = r_tot[active] + step
            x_adv[active] = (x[active] + (1 + overshoot) * r_tot[active]).clamp(0.0, 1.0)
    return AttackOutput(x_adv.detach(), model, y, targeted=targeted)


def carlini_wagner_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    binary_search_steps: int = 5,
    initial_const: float = 1e-2,
    kappa: float = 0.0,
    lr: float = 0.01,
    targeted: bool = False,
) -> AttackOutput:
    """Carlini-Wagner L2 with a per-image binary search over ``c``; keeps the best example.

    Untargeted, ``f = max(Z_y - max_{j != y} Z_j, -kappa)``; targeted (``y`` = target
    labels), ``f = max(max_{j != t} Z_j - Z_t, -kappa)``. An example counts as successful
    when the decision is changed (reaches the target) with margin at least ``kappa``.

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackOutput` (images that were never
        fooled are returned unchanged, so their ``success`` is False).
    """
    _check_inputs(x, y, 0.0)
    check_positive_int(steps, "steps")
    check_positive_int(binary_search_steps, "binary_search_steps")
    n = x.shape[0]
    dev = x.device
    lo = torch.zeros(n, device=dev)
    hi = torch.full((n,), float("inf"), device=dev)
    c = torch.full((n,), float(initial_const), device=dev)
    best_l2 = torch.full((n,), float("inf"), device=dev)
    best = x.clone()
    w0 = torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    with eval_mode(model):
        with torch.no_grad():
            _check_labels(y, model(x[:1]).expand(n, -1) if n else model(x))
        yy = y.to(dev)
        onehot = None
        for _ in range(binary_search_steps):
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
                opt.zero_grad()
                loss.backward()
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
    return AttackOutput(best.detach(), model, y, targeted=targeted)


MINIMAL_ATTACKS: Registry[object] = Registry("minimal attack")
MINIMAL_ATTACKS.register("deepfool", deepfool, "DeepFool L2, overshoot 0.02, batched")
MINIMAL_ATTACKS.register("cw-l2", carlini_wagner_l2, "Carlini-Wagner L2, binary search over c")
