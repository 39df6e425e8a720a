"""Square Attack (Andriushchenko et al. 2020): the score-based black-box check, L-inf.

It needs only the model's scores, never a gradient, so it is the check that a defense which
masks or breaks gradients has not merely defeated the white-box attacks. Algorithm 1 of the
paper with the reference code's schedule:

* start: vertical stripes, every column of every channel at ``+eps`` or ``-eps`` (random),
  clipped to ``[0, 1]``;
* each iteration (one query per image still correctly classified): a square window of side
  ``s = round(sqrt(p * C H W / C))`` (at least 1, at most ``H - 1``) at a random position,
  the same for the whole batch; inside it every channel of every image gets a new random
  ``+-eps`` (redrawn where it would leave the window unchanged); the candidate is kept where
  it lowers the loss;
* ``p`` starts at ``p_init = 0.8`` and halves at the reference code's iterations 10, 50,
  200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10,000-query budget (scaled to
  ``queries``);
* the loss is the margin ``z_y - max_{j != y} z_j`` (the image is fooled once it is negative)
  or cross-entropy (minimised as ``-CE``); an image stops using queries once fooled.

Randomness is drawn on the CPU from the attack's generator.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from advsr import progress
from advsr.attacks.base import AttackSettings, Raw, register_attack
from advsr.attacks.classifier import at_most
from advsr.attacks.objectives import margin_of

__all__ = ["MAX_QUERIES", "SquareSettings", "square_p"]

MAX_QUERIES = 1_000_000
"""The most queries per image (the reference evaluation uses 10,000)."""


class SquareSettings(AttackSettings):
    """Square: a query budget per image, the initial square fraction and the loss."""

    queries: Annotated[int, at_most(MAX_QUERIES)] = Field(5000, ge=1, le=MAX_QUERIES)
    p_init: float = Field(0.8, gt=0.0, le=1.0)
    loss: Literal["margin", "ce"] = "margin"


_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_p(p_init: float, it: int, queries: int) -> float:
    """The fraction of pixels the square covers at iteration ``it`` (the reference schedule
    for 10,000 queries, rescaled).

    Example:
        >>> [square_p(0.8, i, 10_000) for i in (0, 10, 11, 51, 9000)]
        [0.8, 0.8, 0.4, 0.2, 0.0015625]
    """
    t = int(it / queries * 10_000)
    return p_init / 2 ** sum(t > h for h in _HALVINGS)


def _signs(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


def _core(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float | None,
    s: Any,
    generator: torch.Generator | None,
) -> Raw:
    assert y is not None and eps is not None
    n, c, h, w = x.shape

    def losses(xq: torch.Tensor, yq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            z = model(xq)
        margin = -margin_of(z, yq, kappa=math.inf)  # z_y - max_{j != y} z_j
        loss = margin if s.loss == "margin" else -F.cross_entropy(z, yq, reduction="none")
        return loss, margin

    stripes = _signs((n, c, 1, w), generator).to(x.device, x.dtype) * eps
    x_best = (x + stripes).clamp(0.0, 1.0)
    loss_best, margin = losses(x_best, y)
    used = torch.ones(n, dtype=torch.long)
    for it in range(s.queries - 1):
        progress.step(it, s.queries - 1)
        todo = (margin > 0).nonzero()[:, 0]
        if len(todo) == 0:
            break
        x0, xb = x[todo], x_best[todo]
        side = max(round(math.sqrt(square_p(s.p_init, it, s.queries) * h * w)), 1)
        side = min(side, h - 1, w - 1) if min(h, w) > 1 else 1
        top = int(torch.randint(0, h - side + 1, (), generator=generator))
        left = int(torch.randint(0, w - side + 1, (), generator=generator))
        win = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
        delta = xb - x0
        old = xb[win]
        for _ in range(10):  # redraw where the window would not change
            pick = _signs((len(todo), c, 1, 1), generator).to(x.device, x.dtype) * eps
            delta[win] = pick
            cand = (x0 + delta).clamp(0.0, 1.0)
            same = ((cand[win] - old).abs() < 1e-7).flatten(1).all(1)
            if not bool(same.any()):
                break
        loss, marg = losses(cand, y[todo])
        better = loss < loss_best[todo]
        x_best[todo] = torch.where(better.view(-1, 1, 1, 1), cand, xb)
        loss_best[todo] = torch.where(better, loss, loss_best[todo])
        margin[todo] = torch.where(better, marg, margin[todo])
        used[todo.cpu()] += 1
    return Raw(x_best, diagnostics={"queries": used})


register_attack(
    "square",
    kind="score",
    domain="classifier",
    norm="linf",
    settings=SquareSettings,
    core=_core,
    description="Square Attack L-inf, score-based black box (no gradients), query budget",
    stochastic=True,
    reference="Andriushchenko et al. 2020",
)
