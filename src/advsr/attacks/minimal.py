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
) -> AttackOutput:
    """Batched multi-class DeepFool (L2).

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackOutput`.
    """
    _check_inputs(x, y, 0.0)
    check_positive_int(steps, "steps")
    check_non_negative(overshoot, "overshoot")
    with eval_mode(model):
        with torch.no_grad():
            logits0 = model(x)
        _check_labels(y, logits0)
        yy = y.to(logits0.device)
        k = min(candidates, logits0.shape[1])
        order = logits0.argsort(dim=1, descending=True)[:, :k]  # candidate classes per image
        # make the true class the first candidate
        others = order.masked_fill(order == yy[:, None], -1)
        cand = torch.cat([yy[:, None], others], dim=1)
        cand = torch.stack([row[row >= 0][:k] for row in cand])  # (N, k), true class first
        r_tot = torch.zeros_like(x)
        x_adv = x.clone()
        active = torch.arange(x.shape[0], device=x.device)  # images still classified right
        for _ in range(steps):
            xr = x_adv[active].detach().requires_grad_(True)
            z = model(xr)
            still = z.argmax(dim=1) == yy[active]
            if not bool(still.any()):
                break
            # compute only on the images that are not fooled yet (per-image early stop)
            keep = still.nonzero()[:, 0]
            active, z, xr_keep = active[keep], z[keep], xr
            zc = z.gather(1, cand[active])  # (n, k)
            grads = []
            for j in range(k):
                (g,) = torch.autograd.grad(zc[:, j].sum(), xr_keep, retain_graph=j < k - 1)
                grads.append(g[keep])
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
        with torch.no_grad():
            success = model(x_adv).argmax(dim=1) != yy
    return AttackOutput(x_adv.detach(), success)


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
) -> AttackOutput:
    """Carlini-Wagner L2 with a per-image binary search over ``c``; keeps the best example.

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackOutput` (images that were never
        fooled are returned unchanged, with ``success`` False).
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
                true = z.gather(1, yy[:, None])[:, 0]
                other = z.masked_fill(onehot, float("-inf")).max(dim=1).values
                f = (true - other).clamp(min=-kappa)
                l2 = (xa - x).flatten(1).pow(2).sum(1)
                loss = (l2 + c * f).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    ok = (z.argmax(dim=1) != yy) & (true - other <= -kappa)
                    better = ok & (l2.sqrt() < best_l2)
                    best_l2 = torch.where(better, l2.sqrt(), best_l2)
                    best[better] = xa.detach()[better]
                    fooled |= ok
            # binary search on c per image
            hi = torch.where(fooled, torch.minimum(hi, c), hi)
            lo = torch.where(fooled, lo, torch.maximum(lo, c))
            c = torch.where(torch.isinf(hi), c * 10, (lo + hi) / 2)
        with torch.no_grad():
            success = model(best).argmax(dim=1) != yy
    return AttackOutput(best.detach(), success)


MINIMAL_ATTACKS: Registry[object] = Registry("minimal attack")
MINIMAL_ATTACKS.register("deepfool", deepfool, "DeepFool L2, overshoot 0.02, batched")
MINIMAL_ATTACKS.register("cw-l2", carlini_wagner_l2, "Carlini-Wagner L2, binary search over c")
