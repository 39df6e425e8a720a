"""Perceptually guided attacks under SSIM constraints: PGAP (a QCQP per step) and FPGAP.

Pochimireddy, Siripuram and Channappayya, "Can Perceptual Guidance Lead to Semantically
Explainable Adversarial Perturbations?" (section III-A, section IV, Algorithms 1 and 2,
Appendix A). Both attacks maximise the linearised loss ``x_adv . g`` (``g`` the gradient of
the loss at the current point) under constraints taken from the two factors of SSIM, then
re-linearise at the new point until the label flips.

**SSIM factors.** With ``C3 = C2 / 2``, ``SSIM = S1 S2`` where, for ``N`` values ``x`` and
``x_adv`` with means ``mu``, ``m`` and centred vectors ``a = x - mu``, ``b = x_adv - m``:

* ``S1 = (2 mu m + C1) / (mu^2 + m^2 + C1)`` (luminance). In the paper's vector form
  (``mu 1`` against ``m 1``) every term gains a factor ``N`` and the constant becomes
  ``c1 = N C1``: the same number, so the scalar form with ``C1`` is used.
* ``S2 = (2 a.b + c) / (|a|^2 + |b|^2 + c)`` with ``c = N C2`` (contrast x structure): the
  moment form ``(2 s_xy + C2) / (s_x^2 + s_y^2 + C2)`` with population moments (``1/N``),
  multiplied through by ``N``. (With sample moments, skimage's default, ``c = (N - 1) C2``.)

``C1 = 0.01^2`` and ``C2 = 0.03^2`` (data range 1, images in ``[0, 1]``). The statistics are
those of one window covering the whole image: ``stats="image"`` takes all ``C*H*W`` values as
one vector (the paper's formulation), ``stats="channel"`` takes each channel's ``H*W`` values
on its own (every constraint then holds in every channel). This global SSIM is not the
windowed (7x7 / Gaussian) SSIM of image-quality tables.

**Feasible sets (derived here).** Let ``eta = 1 / (1 - eps^2)``. As the denominators are
positive, ``S2 >= 1 - eps2^2 = 1/eta`` iff ``eta (2 a.b + c) >= |a|^2 + |b|^2 + c``, i.e.
``|b|^2 - 2 eta a.b + |a|^2 + (1 - eta) c <= 0``; completing the square and using
``eta - 1 = eta eps^2``:

    |b - eta a|^2 <= (eta^2 - 1) |a|^2 + eta eps2^2 c        (the S2 ball, radius r2)

with equality exactly on the level set ``S2 = 1 - eps2^2``. The same steps on ``S1`` give
``(m - eta1 mu)^2 <= (eta1^2 - 1) mu^2 + eta1 eps1^2 C1``: two half-spaces on the mean,
``m in [eta1 mu - r1, eta1 mu + r1]`` (``eps1 = 0`` leaves ``m = mu``, the paper's eq. (9)).
The paper (eq. 13) prints ``k21 = eta^2 |a|^2 + c eta eps2^2``, without the ``-|a|^2`` term
(and likewise ``k11`` for S1): a far larger ball. On its sphere, a point ``b = eta a + r u``
with ``u`` a unit vector orthogonal to ``a`` (the typical direction of a gradient step in
high dimension) has ``S2 = (2 eta |a|^2 + c) / ((1 + 2 eta^2) |a|^2 + (1 + eta eps^2) c)``,
which tends to ``2 eta / (1 + 2 eta^2) = 0.66611`` at ``eps2 = 0.05`` when ``c << |a|^2``
(0.6673 for a uniform random 3x32x32 image), not ``0.9975``; at ``eps1 = 0`` its ``k11``
allows any mean in ``[0, 2 mu]``. ``radius="corrected"`` (default) uses the derived radii,
``radius="paper"`` the printed ones.

**FPGAP** (eq. 10, Algorithm 2). On ``{mean(x_adv) = mu} x {S2 ball}`` write
``x_adv = mu 1 + eta a + d`` with ``d`` of zero mean and ``|d| <= sqrt(r2)``: the objective is
``const + d . g = const + d . P(g)`` (``P`` removes the mean), so the exact maximiser is

    x_adv = mu 1 + eta a + sqrt(r2) P(g) / |P(g)|,

which meets ``S2 = 1 - eps2^2`` and the mean exactly (before clipping). The paper's eq. (10)
uses the raw ``g / |g|``: it solves its relaxation (14), the ball around ``mu 1 + eta a`` in the
full space, where the mean is free. Its point moves the mean by ``sqrt(r2) mean(g) / |g|``
(violating eq. 9's mean constraint, lowering S1) and sits strictly inside the S2 ball (the
centred part of its step has length ``sqrt(r2) |P(g)| / |g|``), so it is not the maximiser
of eq. (9). ``project=True`` (default) uses ``P(g)``; ``project=False`` is eq. (10) as
printed. A zero ``P(g)`` gives the ball's centre. Each step is batched over the images.

**Iterations** (Algorithms 1 and 2): solve, predict, stop the images whose label flipped
(reached the target when ``targeted``), re-linearise the others at their new point, for at
most ``iterations`` solves per image. The prediction of an iterate comes from the forward
pass that computes the next gradient, so an image already misclassified is returned
unchanged (0 solves; the algorithms would move it once). ``anchor="original"`` (default)
keeps the constraint set around the original image (the iterates only change the
linearisation point), so ``eps1``/``eps2`` bound the returned example's ``S1``/``S2`` to the
original, as an L-p budget does in PGD. ``anchor="drift"`` is the algorithms as printed
(``x = x_adv``: the ball is rebuilt around the last iterate), so the distortion compounds
over the iterations and ``eps2`` no longer bounds the result; the paper reports the measured
SSIM instead. The price of the guarantee: an anchored iterate is always on the sphere (an
easy image still spends the whole budget) and, with no step size, the iterates can cycle.
Measured on the bundled digits CNN (``digits-test``, first 16, FPGAP, 10 iterations, C&W
kappa 50, clip): ``original`` fools 8/16 at eps2 = 0.05 (S2 0.9977), 15/16 at 0.1 (S2 0.991),
16/16 at 0.2 (S2 0.967); ``drift`` fools 16/16 at eps2 = 0.02 (S2 mean 0.9962, min 0.9884)
and at 0.05 (mean 0.9942, min 0.9826). ``original`` is the default because a budget that
bounds the output is what a robustness evaluation compares across attacks; use ``drift``
for the paper's fooling-rate-at-measured-SSIM protocol. ``S1``/``S2``/SSIM are always
reported against the original image. FPGAP
clips to ``[0, 1]`` after each step (``clip=True``; ``S2 = 1 - eps2^2`` holds exactly before
the clip and only approximately after it).

**Loss**: the Carlini-Wagner margin with ``kappa = 50`` (the paper's supplement,
``loss="cw"``) or cross-entropy (``loss="ce"``), both from :mod:`advsr.attacks.objectives`;
gradients by ``torch.autograd.grad`` in eval mode (model modes are restored).

**PGAP** (eqs. 8 and 9, Algorithm 1) solves the QCQP with cvxpy, one image at a time (the
gradient passes are batched), CLARABEL by default (``solver="SCS"`` as an option), with an
optional ``[0, 1]`` box (``box=True``, default: the returned example then satisfies the
constraints without clipping; ``box=False`` clips the solution like FPGAP). The objective is
``g_hat . x_adv`` with ``g_hat = g / |g|`` (same maximiser, better scaled). Formulation:

* eq. (9) (``eps1 = 0``): the mean is the known constant ``mu``, so ``b = x_adv - mu`` is
  affine with a constant and the ball is ``||x_adv - (mu + eta a)||_2 <= sqrt(r2)`` (one
  second-order cone) plus ``sum(x_adv) = N mu``. Writing ``x - cp.sum(x) / n`` instead makes
  cvxpy build a dense ``n x n`` operator (measured here with the box: 1.4 s per solve at
  n = 768, 80 s at n = 1536; the lead measured 283 s at n = 3072, against 19 ms for the
  known-mean form).
* eq. (8) (``eps1 > 0``): an auxiliary scalar variable ``m`` per group with
  ``sum(x_adv) = N m``, ``lo <= m <= hi`` and ``||x_adv - m 1 - eta a||_2 <= sqrt(r2)``; the
  broadcast ``m 1`` is a sparse column, so the problem stays O(n): at 3x32x32 with the box
  10-15 ms to build and 43 ms to solve (CLARABEL, 19-20 interior-point iterations), the same
  as eq. (9) (9-14 ms + 40-50 ms). At 3x224x224, eq. (9) takes 0.3 + 4 s with the box (33
  iterations), 0.2 + 0.6 s without; FPGAP's step takes well under a millisecond per image
  (``benchmarks/perceptual_speed.py``).

The problem is built from constants at each solve: cvxpy's parameter cache (DPP) would need
a parameter tensor of ``O(n^2)`` entries for an ``n``-vector gradient parameter (338 GiB at
3x224x224). cvxpy 1.9 does not expose CLARABEL's dual objective in ``solver_stats`` (its
``extra_stats`` is None), so the solve goes through the documented
``get_problem_data`` / ``solve_via_data`` / ``unpack_results`` path and reads the solver's
own report: CLARABEL's ``obj_val``, ``obj_val_dual``, ``r_prim``, ``r_dual``; SCS's
``info`` (``pobj``, ``dobj``, ``res_pri``, ``res_dual``). :class:`SolveInfo` holds the status,
the duality gap ``|primal - dual|`` (in units of the normalised objective), the residuals
and the iteration count. A solve whose status is not ``optimal``/``optimal_inaccurate``
(``user_limit``, ``solver_error``, ...) leaves the image at its last iterate, marks it
``failed`` and stops its iterations; nothing is kept silently.

**Reproducing the paper**: ``anchor="drift", radius="paper"`` and, for FPGAP,
``project=False`` follow the printed equations and algorithms; the defaults are the
corrected, exactly constrained versions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import torch
from pydantic import Field, field_validator
from torch import nn

from advsr import progress
from advsr.attacks._loop import Objective, input_grad
from advsr.attacks.base import AttackResult, AttackSettings, Raw, create_attack, register_attack
from advsr.attacks.classifier import at_most
from advsr.attacks.objectives import cross_entropy, cw_margin
from advsr.checks import check_image, check_int_range
from advsr.errors import InputError, ShapeError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ANCHORS",
    "C1",
    "C2",
    "LOSSES",
    "MAX_SOLVER_ITERATIONS",
    "MAX_STEPS",
    "RADII",
    "SOLVERS",
    "STATS",
    "FPGAPSettings",
    "PGAPSettings",
    "QCQPSolution",
    "SSIMBall",
    "SolveInfo",
    "fpgap",
    "fpgap_step",
    "pgap",
    "pgap_solve",
    "s1",
    "s1_mean_bounds",
    "s2",
    "s2_ball",
    "ssim_global",
]

C1 = 0.01**2
"""SSIM luminance constant ``(K1 L)^2`` for data range ``L = 1``."""
C2 = 0.03**2
"""SSIM contrast constant ``(K2 L)^2`` for data range ``L = 1``."""

STATS: tuple[str, ...] = ("image", "channel")
RADII: tuple[str, ...] = ("corrected", "paper")
ANCHORS: tuple[str, ...] = ("original", "drift")
LOSSES: tuple[str, ...] = ("cw", "ce")
SOLVERS: tuple[str, ...] = ("CLARABEL", "SCS")
_SOLVED = ("optimal", "optimal_inaccurate")


# ----------------------------------------------------------------------------- checks


def _choice(value: object, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise InputError(f"unknown {name} {value!r}; use one of {', '.join(options)}")
    return value


def _eps(value: object, name: str, *, allow_zero: bool) -> float:
    span = "[0, 1)" if allow_zero else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number in {span}, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0) and v < 1):
        raise InputError(f"{name} must be a number in {span}, got {value!r}")
    return v


def _pair(x: torch.Tensor, x_adv: torch.Tensor) -> None:
    check_image(x, "x")
    check_image(x_adv, "x_adv")
    if x.shape != x_adv.shape:
        raise ShapeError(f"x_adv {tuple(x_adv.shape)} does not match x {tuple(x.shape)}")


# ------------------------------------------------------------------------ SSIM factors


def _grouped(x: torch.Tensor, stats: str) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, G, M)``: one group per image or per channel."""
    return x.reshape(x.shape[0], x.shape[1] if stats == "channel" else 1, -1)


def _out(t: torch.Tensor, stats: str) -> torch.Tensor:
    """``(N, G)`` -> ``(N,)`` for whole-image statistics, ``(N, C)`` per channel."""
    return t[:, 0] if stats == "image" else t


def _radius2(norm2: Any, eps: float, const: float, radius: str) -> Any:
    """``(eta^2 - 1) norm2 + eta eps^2 const`` (corrected) or ``eta^2 norm2 + ...`` (paper)."""
    eta = 1.0 / (1.0 - eps * eps)
    lead = eps * eps * eta * (eta + 1.0) if radius == "corrected" else eta * eta
    return lead * norm2 + eta * eps * eps * const


def s1(x: torch.Tensor, x_adv: torch.Tensor, *, stats: str = "image") -> torch.Tensor:
    """Luminance factor ``S1 = (2 mu m + C1) / (mu^2 + m^2 + C1)`` of the global SSIM.

    Args:
        x: reference images.
        x_adv: compared images.
        stats: ``image`` (one mean over all values) or ``channel`` (one per channel).

    Returns:
        ``S1`` per image ``(N,)``, or per image and channel ``(N, C)``.

    Raises:
        ShapeError: bad or mismatching tensors.
        InputError: unknown ``stats``.

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N,)`` or ``(N, 3)``.

    Example:
        >>> x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
        >>> torch.allclose(s1(x, x), torch.ones(2, dtype=torch.float64))
        True
    """
    _choice(stats, "stats", STATS)
    _pair(x, x_adv)
    mu = _grouped(x, stats).mean(-1)
    m = _grouped(x_adv, stats).mean(-1)
    return _out((2 * mu * m + C1) / (mu * mu + m * m + C1), stats)


def s2(x: torch.Tensor, x_adv: torch.Tensor, *, stats: str = "image") -> torch.Tensor:
    """Contrast-structure factor ``S2 = (2 a.b + c) / (|a|^2 + |b|^2 + c)``, ``c = N C2``.

    ``a`` and ``b`` are ``x`` and ``x_adv`` minus their means, over ``N`` values (the whole
    image, or one channel).

    Args:
        x: reference images.
        x_adv: compared images.
        stats: ``image`` or ``channel`` (see :func:`s1`).

    Returns:
        ``S2`` per image ``(N,)`` or per image and channel ``(N, C)``.

    Raises:
        ShapeError: bad or mismatching tensors.
        InputError: unknown ``stats``.

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N,)`` or ``(N, 3)``.

    Example:
        >>> x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
        >>> float(s2(x, x)), float(s2(x, 0.5 * x)) < 1
        (1.0, True)
    """
    _choice(stats, "stats", STATS)
    _pair(x, x_adv)
    xg, yg = _grouped(x, stats), _grouped(x_adv, stats)
    a = xg - xg.mean(-1, keepdim=True)
    b = yg - yg.mean(-1, keepdim=True)
    c = xg.shape[-1] * C2
    return _out((2 * (a * b).sum(-1) + c) / (a.square().sum(-1) + b.square().sum(-1) + c), stats)


def ssim_global(x: torch.Tensor, x_adv: torch.Tensor, *, stats: str = "image") -> torch.Tensor:
    """One-window SSIM ``S1 * S2`` (population moments; not the windowed SSIM).

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N,)`` or ``(N, 3)``.
    """
    return s1(x, x_adv, stats=stats) * s2(x, x_adv, stats=stats)


class SSIMBall(NamedTuple):
    """The S2 constraint ``|b - centre|^2 <= radius2`` on ``b = x_adv - mean(x_adv)``.

    Attributes:
        centre: ``eta a`` (``a = x - mean(x)``, per image or per channel), shaped like ``x``.
        radius2: squared radius, ``(N,)`` or ``(N, C)``.
    """

    centre: torch.Tensor
    radius2: torch.Tensor


def _ball(
    xg: torch.Tensor, eps2: float, radius: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grouped ``(N, G, M)`` -> mean ``(N, G, 1)``, centre ``eta a``, radius ``(N, G, 1)``."""
    mean = xg.mean(-1, keepdim=True)
    a = xg - mean
    norm2 = torch.linalg.vector_norm(a, dim=-1, keepdim=True).square()
    r2 = _radius2(norm2, eps2, xg.shape[-1] * C2, radius)
    return mean, a.mul_(1.0 / (1.0 - eps2 * eps2)), r2.sqrt()


def s2_ball(
    x: torch.Tensor, eps2: float, *, radius: str = "corrected", stats: str = "image"
) -> SSIMBall:
    """Centre and squared radius of the set ``S2(x, x_adv) >= 1 - eps2^2``.

    Args:
        x: reference images.
        eps2: tolerance, in ``(0, 1)``.
        radius: ``corrected`` (``(eta^2 - 1)|a|^2 + eta eps2^2 c``, exact) or ``paper``
            (eq. 13 as printed, ``eta^2 |a|^2 + eta eps2^2 c``).
        stats: ``image`` or ``channel``.

    Returns:
        the ball on the centred ``b = x_adv - mean(x_adv)`` (see :class:`SSIMBall`).

    Raises:
        InputError: ``eps2`` outside ``(0, 1)`` or an unknown option.
        ShapeError: bad ``x``.

    Shape:
        ``(N, 3, H, W)`` -> centre ``(N, 3, H, W)``, radius2 ``(N,)`` or ``(N, 3)``.

    Example:
        >>> x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
        >>> ball = s2_ball(x, 0.1)
        >>> u = torch.randn(1, 3, 8, 8, dtype=torch.float64)
        >>> u = (u - u.mean()) / (u - u.mean()).norm()  # a unit direction of zero mean
        >>> x_adv = x.mean() + ball.centre + ball.radius2.sqrt() * u  # on the sphere
        >>> torch.allclose(s2(x, x_adv), torch.tensor([0.99], dtype=torch.float64))
        True
    """
    eps2 = _eps(eps2, "eps2", allow_zero=False)
    _choice(radius, "radius", RADII)
    _choice(stats, "stats", STATS)
    check_image(x, "x")
    _, centre, r = _ball(_grouped(x, stats), eps2, radius)
    return SSIMBall(centre.reshape(x.shape), _out(r[..., 0].square(), stats))


def s1_mean_bounds(
    x: torch.Tensor, eps1: float, *, radius: str = "corrected", stats: str = "image"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval of ``mean(x_adv)`` allowed by ``S1(x, x_adv) >= 1 - eps1^2`` (two half-spaces).

    ``(m - eta1 mu)^2 <= (eta1^2 - 1) mu^2 + eta1 eps1^2 C1`` (corrected) or
    ``eta1^2 mu^2 + eta1 eps1^2 C1`` (``paper``, eq. 12 as printed). The paper's eq. (12)
    states it on ``1^T x_adv = N m``.

    Args:
        x: reference images.
        eps1: tolerance, in ``[0, 1)`` (0: the mean is fixed, corrected radius).
        radius: ``corrected`` or ``paper``.
        stats: ``image`` or ``channel``.

    Returns:
        lower and upper bounds, each ``(N,)`` or ``(N, C)``.

    Raises:
        InputError: ``eps1`` outside ``[0, 1)`` or an unknown option.
        ShapeError: bad ``x``.

    Shape:
        ``(N, 3, H, W)`` -> 2 x ``(N,)`` or 2 x ``(N, 3)``.

    Example:
        >>> lo, hi = s1_mean_bounds(torch.full((1, 3, 4, 4), 0.5), 0.0)
        >>> float(lo), float(hi)
        (0.5, 0.5)
    """
    eps1 = _eps(eps1, "eps1", allow_zero=True)
    _choice(radius, "radius", RADII)
    _choice(stats, "stats", STATS)
    check_image(x, "x")
    mu = _grouped(x, stats).mean(-1)
    r = _radius2(mu.square(), eps1, C1, radius).sqrt()
    centre = mu / (1.0 - eps1 * eps1)
    return _out(centre - r, stats), _out(centre + r, stats)


# ----------------------------------------------------------------------------- FPGAP


def _closed_form(
    mean: torch.Tensor, centre: torch.Tensor, r: torch.Tensor, g: torch.Tensor, project: bool
) -> torch.Tensor:
    """``mean + centre + r u``, ``u`` the unit (mean-free when ``project``) gradient."""
    d = g - g.mean(-1, keepdim=True) if project else g
    norm = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    # |d_i| <= |d|, so d / max(|d|, tiny) cannot overflow; a zero gradient gives the centre
    inv = torch.where(norm > 0, norm.clamp_min(torch.finfo(d.dtype).tiny).reciprocal(), 0.0)
    return (mean + centre).addcmul_(d, r * inv)


def fpgap_step(
    x: torch.Tensor,
    grad: torch.Tensor,
    eps2: float,
    *,
    radius: str = "corrected",
    stats: str = "image",
    project: bool = True,
) -> torch.Tensor:
    """FPGAP's closed-form step: the maximiser of ``x_adv . grad`` on eq. (9)'s set (no clip).

    ``x_adv = mean(x) + eta a + sqrt(r2) P(grad) / |P(grad)|`` per image (or per channel), with
    ``P`` removing the mean; see the module docstring.

    Args:
        x: centre images (the original, or the current iterate for ``anchor="drift"``).
        grad: gradient of the loss to maximise, shaped like ``x``.
        eps2: S2 tolerance, in ``(0, 1)``.
        radius: ``corrected`` or ``paper`` (see :func:`s2_ball`).
        stats: ``image`` or ``channel``.
        project: remove the mean of the gradient (exact maximiser); False is eq. (10) as
            printed (raw ``grad / |grad|``: the mean moves, and with the corrected radius S2
            stays above ``1 - eps2^2``).

    Returns:
        the new point, not clipped: with ``project`` and the corrected radius,
        ``S2(x, x_adv) = 1 - eps2^2`` and ``mean(x_adv) = mean(x)`` (up to rounding) unless
        ``P(grad) = 0`` (then the ball's centre).

    Raises:
        InputError: ``eps2`` outside ``(0, 1)`` or an unknown option.
        ShapeError: bad or mismatching tensors.

    Shape:
        ``(N, 3, H, W)`` x2 -> ``(N, 3, H, W)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
        >>> grad = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
        >>> x_adv = fpgap_step(x, grad, 0.05)
        >>> torch.allclose(s2(x, x_adv), torch.full((2,), 0.9975, dtype=torch.float64))
        True
    """
    eps2 = _eps(eps2, "eps2", allow_zero=False)
    _choice(radius, "radius", RADII)
    _choice(stats, "stats", STATS)
    _pair(x, grad)
    mean, centre, r = _ball(_grouped(x, stats), eps2, radius)
    return _closed_form(mean, centre, r, _grouped(grad, stats), project).reshape(x.shape)


class _Tap(nn.Module):
    """Calls the model and keeps its last logits: one forward serves the loss and the test."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.logits = out.detach()
        return out


Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(indices, current iterates, gradients) -> (new iterates, keep-going mask)``."""


def _iterate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: Any, step: Step
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithms 1/2 for a batch: per-image stop, gradients of the unfinished images only.

    ``s`` gives ``steps``, ``loss``, ``kappa`` and ``targeted``. Returns the final iterates
    and the number of solves per image. The caller owns modes.
    """
    loss, kappa, targeted = s.loss, float(s.kappa), s.targeted
    n = x.shape[0]
    yd = y.to(x.device)
    x_cur = x.detach().clone()
    used = torch.zeros(n, dtype=torch.long, device=x.device)
    active = torch.arange(n, device=x.device)
    tap = _Tap(model)
    for it in range(s.steps):
        progress.step(it, s.steps)
        ya = yd[active]
        objective: Objective = (
            cw_margin(tap, ya, kappa=kappa, targeted=targeted)
            if loss == "cw"
            else cross_entropy(tap, ya, targeted=targeted)
        )
        xr = x_cur[active].requires_grad_(True)
        value = objective(xr)
        assert tap.logits is not None
        pred = tap.logits.argmax(dim=1)
        keep = (pred != ya) if targeted else (pred == ya)
        if not bool(keep.any()):
            break
        grad = input_grad(value[keep].sum(), xr)
        active, grad = active[keep], grad[keep]
        with torch.no_grad():
            new, alive = step(active, x_cur[active], grad.detach())
        x_cur[active] = new
        used[active] += 1
        active = active[alive.to(active.device)]
        if active.numel() == 0:
            break
    return x_cur, used


MAX_STEPS = 100_000
"""The most FPGAP steps or PGAP QCQPs per image."""
MAX_SOLVER_ITERATIONS = 1_000_000
"""The most iterations a PGAP solver option may allow (``max_iter`` of CLARABEL,
``max_iters`` of SCS)."""


class _PerceptualSettings(AttackSettings):
    """Settings shared by FPGAP and PGAP (defaults: the paper's loss, the exact sets)."""

    steps: Annotated[int, at_most(MAX_STEPS)] = Field(10, ge=1, le=MAX_STEPS)
    loss: Literal["cw", "ce"] = "cw"
    kappa: float = Field(50.0, ge=0.0)
    anchor: Literal["original", "drift"] = "original"
    stats: Literal["image", "channel"] = "image"
    radius: Literal["corrected", "paper"] = "corrected"
    targeted: bool = False


class FPGAPSettings(_PerceptualSettings):
    """FPGAP (Algorithm 2): ``steps`` closed-form steps; ``project`` removes the gradient's
    mean (the exact maximiser; False is eq. 10 as printed); ``clip`` clips every iterate."""

    project: bool = True
    clip: bool = True


class PGAPSettings(_PerceptualSettings):
    """PGAP (Algorithm 1): ``steps`` QCQPs; ``eps1`` > 0 solves eq. (8) instead of (9);
    ``box`` adds the [0, 1] box; ``solver`` CLARABEL or SCS with ``solver_options``."""

    eps1: float = Field(0.0, ge=0.0, lt=1.0)
    box: bool = True
    solver: Literal["CLARABEL", "SCS"] = "CLARABEL"
    solver_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("solver_options")
    @classmethod
    def _bounded_iterations(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if "iter" in key:
                check_int_range(value, f"solver option {key}", 1, MAX_SOLVER_ITERATIONS)
        return v


def _measure(
    x: torch.Tensor, x_adv: torch.Tensor, eps2: float | None, s: Any
) -> dict[str, torch.Tensor]:
    """S1, S2 and the one-window SSIM against the original image, and whether the returned
    example meets ``S2 >= 1 - eps2^2`` (up to 1e-6; every channel with ``stats="channel"``)."""
    f1, f2 = s1(x, x_adv, stats=s.stats), s2(x, x_adv, stats=s.stats)
    worst = f2.reshape(f2.shape[0], -1).amin(1)
    eps2 = float(eps2 or 0.0)
    out = {"s1": f1, "s2": f2, "ssim_global": f1 * f2}
    out["within_budget"] = (worst >= 1.0 - eps2 * eps2 - 1e-6).double().cpu()
    return out


def _fpgap_core(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float | None,
    s: FPGAPSettings,
    generator: torch.Generator | None,
) -> Raw:
    """Faster PGAP (Algorithm 2), see :func:`fpgap`."""
    assert y is not None and eps is not None
    eps2 = eps
    base = _ball(_grouped(x, s.stats), eps2, s.radius) if s.anchor == "original" else None

    def step(
        idx: torch.Tensor, xc: torch.Tensor, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if base is not None:
            mean, centre, r = (t[idx] for t in base)
        else:
            mean, centre, r = _ball(_grouped(xc, s.stats), eps2, s.radius)
        new = _closed_form(mean, centre, r, _grouped(grad, s.stats), s.project).reshape(xc.shape)
        if s.clip:
            new = new.clamp(0.0, 1.0)
        return new, torch.ones(idx.shape[0], dtype=torch.bool, device=idx.device)

    x_adv, used = _iterate(model, x, y, s, step)
    return Raw(x_adv, diagnostics={"iterations": used.cpu()})


def fpgap(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps2: float = 0.05, **settings: Any
) -> AttackResult:
    """Faster PGAP (Algorithm 2): iterated closed-form steps on the SSIM constraint set.

    Every image of the batch moves in the same tensor ops and stops on its own as soon as
    its label flips (reaches ``y`` when ``targeted``); the gradient passes run on the
    unfinished images only. Settings: :class:`FPGAPSettings` (``steps`` iterations, ``loss``
    ``cw``/``ce``, ``kappa``, ``anchor`` ``original``/``drift``, ``stats``
    ``image``/``channel``, ``radius`` ``corrected``/``paper``, ``project``, ``clip``,
    ``targeted``). The result's ``outputs`` hold ``s1``, ``s2``, ``ssim_global`` against the
    original image and ``within_budget``; ``diagnostics["iterations"]`` the steps per image
    (0 when it was misclassified from the start).

    Raises:
        InputError / ShapeError: bad images, labels or options (``eps2`` outside ``(0, 1)``).

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackResult`.
    """
    return create_attack("fpgap", eps=eps2, **settings)(model, x, y)


# ------------------------------------------------------------------------------ PGAP


@dataclass(frozen=True)
class SolveInfo:
    """What the solver reported for one QCQP.

    Attributes:
        status: cvxpy's status (``optimal``, ``optimal_inaccurate``, ``user_limit``,
            ``infeasible``, ``solver_error``...).
        objective: optimal ``g_hat . x_adv`` (``g_hat`` the unit gradient), NaN when none.
        gap: duality gap ``|primal - dual|`` reported by the solver (normalised objective).
        primal_residual: the solver's primal residual.
        dual_residual: the solver's dual residual.
        iterations: interior-point (CLARABEL) or ADMM (SCS) iterations.
    """

    status: str
    objective: float
    gap: float
    primal_residual: float
    dual_residual: float
    iterations: int


@dataclass(frozen=True)
class QCQPSolution:
    """One PGAP solve: the new point (None when the solver gave none) and the report.

    Shape:
        ``x_adv`` ``(1, 3, H, W)``.
    """

    x_adv: torch.Tensor | None
    info: SolveInfo


def _report(raw: Any, status: str, objective: float) -> SolveInfo:
    """Normalise CLARABEL's solution object / SCS's result dict into a :class:`SolveInfo`."""
    nan = float("nan")
    if isinstance(raw, dict):  # SCS
        info = raw.get("info", {})
        primal, dual = float(info.get("pobj", nan)), float(info.get("dobj", nan))
        res = (float(info.get("res_pri", nan)), float(info.get("res_dual", nan)))
        its = int(info.get("iter", -1))
    else:  # CLARABEL DefaultSolution
        primal = float(getattr(raw, "obj_val", nan))
        dual = float(getattr(raw, "obj_val_dual", nan))
        res = (float(getattr(raw, "r_prim", nan)), float(getattr(raw, "r_dual", nan)))
        its = int(getattr(raw, "iterations", -1))
    return SolveInfo(status, objective, abs(primal - dual), res[0], res[1], its)


def _solve_qcqp(
    anchor: np.ndarray,
    grad: np.ndarray,
    *,
    eps2: float,
    eps1: float,
    radius: str,
    box: bool,
    solver: str,
    options: Mapping[str, Any],
) -> tuple[np.ndarray | None, SolveInfo]:
    """Eq. (9) (``eps1 = 0``) or eq. (8) for one image, grouped ``(G, M)`` float64 arrays."""
    import cvxpy as cp
    import numpy as np

    groups, m_size = anchor.shape
    mu = anchor.mean(axis=1)
    a = anchor - mu[:, None]
    eta = 1.0 / (1.0 - eps2 * eps2)
    r = np.sqrt(_radius2((a * a).sum(axis=1), eps2, m_size * C2, radius))
    g = grad.reshape(-1)
    g_norm = float(np.linalg.norm(g))
    g_hat = g / g_norm if g_norm > 0 else g
    v = cp.Variable(groups * m_size)
    parts = [v] if groups == 1 else [v[k * m_size : (k + 1) * m_size] for k in range(groups)]
    cons = []
    if eps1 == 0.0:  # eq. (9): the mean is the known constant mu
        for k, vk in enumerate(parts):
            cons += [cp.sum(vk) == m_size * mu[k], cp.norm(vk - (mu[k] + eta * a[k]), 2) <= r[k]]
    else:  # eq. (8): auxiliary mean m, sparse broadcast
        eta1 = 1.0 / (1.0 - eps1 * eps1)
        r1 = np.sqrt(_radius2(mu * mu, eps1, C1, radius))
        m = cp.Variable(groups)
        cons += [m >= eta1 * mu - r1, m <= eta1 * mu + r1]
        for k, vk in enumerate(parts):
            cons += [cp.sum(vk) == m_size * m[k], cp.norm(vk - m[k] - eta * a[k], 2) <= r[k]]
    if box:
        cons += [v >= 0.0, v <= 1.0]
    prob = cp.Problem(cp.Maximize(g_hat @ v), cons)
    opts = dict(options)
    try:
        data, chain, inverse = prob.get_problem_data(solver, solver_opts=opts)
        raw = chain.solve_via_data(prob, data, False, False, opts)
        with warnings.catch_warnings():  # reported in the status instead
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            prob.unpack_results(raw, chain, inverse)
    except cp.error.SolverError:
        nan = float("nan")
        return None, SolveInfo("solver_error", nan, nan, nan, nan, -1)
    value = float(prob.value) if prob.value is not None else float("nan")
    info = _report(raw, str(prob.status), value)
    x_new = None if v.value is None else np.asarray(v.value, dtype=np.float64).reshape(anchor.shape)
    return x_new, info


def _check_solver(solver: object) -> str:
    import cvxpy as cp

    name = _choice(solver.upper() if isinstance(solver, str) else solver, "solver", SOLVERS)
    if name not in cp.installed_solvers():
        raise InputError(f"solver {name} is not installed for cvxpy")
    return name


def _to_np(t: torch.Tensor, stats: str) -> np.ndarray:
    return _grouped(t.detach().to("cpu", torch.float64), stats)[0].numpy()


def pgap_solve(
    x: torch.Tensor,
    grad: torch.Tensor,
    eps2: float,
    *,
    eps1: float = 0.0,
    box: bool = True,
    radius: str = "corrected",
    stats: str = "image",
    solver: str = "CLARABEL",
    solver_options: Mapping[str, Any] | None = None,
) -> QCQPSolution:
    """One PGAP QCQP (eq. 9 when ``eps1 = 0``, else eq. 8) for one image, with cvxpy.

    Maximises ``x_adv . grad`` subject to ``S2(x, x_adv) >= 1 - eps2^2``, the mean fixed
    (eq. 9) or ``S1(x, x_adv) >= 1 - eps1^2`` (eq. 8), and ``0 <= x_adv <= 1`` with ``box``.
    Without the box, eq. (9)'s solution is :func:`fpgap_step`'s point.

    Args:
        x: the centre image (original or current iterate).
        grad: gradient of the loss, shaped like ``x``.
        eps2: S2 tolerance, in ``(0, 1)``.
        eps1: S1 tolerance, in ``[0, 1)``; 0 fixes the mean (eq. 9).
        box: add the ``[0, 1]`` box.
        radius: ``corrected`` or ``paper`` (for both constraints).
        stats: ``image`` or ``channel``.
        solver: ``CLARABEL`` or ``SCS``.
        solver_options: passed to the solver (e.g. ``{"max_iter": 50}`` for CLARABEL).

    Returns:
        the solution (float64 on the CPU converted to ``x``'s dtype and device) and the
        solver's report (:class:`SolveInfo`).

    Raises:
        InputError / ShapeError: bad tensors (not one image) or options.

    Shape:
        ``(1, 3, H, W)`` x2 -> ``(1, 3, H, W)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
        >>> grad = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
        >>> sol = pgap_solve(x, grad, 0.05, box=False)
        >>> sol.info.status, torch.allclose(sol.x_adv, fpgap_step(x, grad, 0.05), atol=1e-6)
        ('optimal', True)
    """
    eps2 = _eps(eps2, "eps2", allow_zero=False)
    eps1 = _eps(eps1, "eps1", allow_zero=True)
    _choice(radius, "radius", RADII)
    _choice(stats, "stats", STATS)
    solver = _check_solver(solver)
    _pair(x, grad)
    if x.shape[0] != 1:
        raise ShapeError(f"pgap_solve takes one image (1, 3, H, W), got {tuple(x.shape)}")
    sol, info = _solve_qcqp(
        _to_np(x, stats),
        _to_np(grad, stats),
        eps2=eps2,
        eps1=eps1,
        radius=radius,
        box=bool(box),
        solver=solver,
        options=solver_options or {},
    )
    out = None if sol is None else torch.from_numpy(sol).to(x.device, x.dtype).reshape(x.shape)
    return QCQPSolution(out, info)


def _pgap_core(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    eps: float | None,
    s: PGAPSettings,
    generator: torch.Generator | None,
) -> Raw:
    """PGAP (Algorithm 1), see :func:`pgap`."""
    assert y is not None and eps is not None
    eps2 = eps
    solver = _check_solver(s.solver)
    n = x.shape[0]
    logs: list[list[SolveInfo]] = [[] for _ in range(n)]
    failed = torch.zeros(n, dtype=torch.bool)

    def step(
        idx: torch.Tensor, xc: torch.Tensor, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new = xc.clone()
        alive = torch.ones(idx.shape[0], dtype=torch.bool)
        for j, i in enumerate(idx.tolist()):
            centre = x[i : i + 1] if s.anchor == "original" else xc[j : j + 1]
            sol, info = _solve_qcqp(
                _to_np(centre, s.stats),
                _to_np(grad[j : j + 1], s.stats),
                eps2=eps2,
                eps1=s.eps1,
                radius=s.radius,
                box=s.box,
                solver=solver,
                options=s.solver_options,
            )
            logs[i].append(info)
            if sol is None or info.status not in _SOLVED:
                failed[i] = True
                alive[j] = False
                continue
            point = torch.from_numpy(sol).to(x.device, x.dtype).reshape(xc[j].shape)
            new[j] = point.clamp(0.0, 1.0)
        return new, alive

    x_adv, used = _iterate(model, x, y, s, step)
    nan = float("nan")
    diagnostics = {
        "iterations": used.cpu(),
        "status": tuple(log[-1].status if log else "skipped" for log in logs),
        "gap": torch.tensor([log[-1].gap if log else nan for log in logs], dtype=torch.float64),
        "solves": tuple(tuple(log) for log in logs),
    }
    return Raw(x_adv, diagnostics=diagnostics, failed=failed)


def pgap(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps2: float = 0.05, **settings: Any
) -> AttackResult:
    """PGAP (Algorithm 1): iterated QCQPs (eq. 9, or eq. 8 with ``eps1 > 0``) with cvxpy.

    The gradients of the unfinished images are computed in one batched pass; the QCQPs
    are solved one image at a time. Settings: :class:`PGAPSettings`. See the module
    docstring for the formulation, the anchors and the failure handling: the result's
    ``failed`` marks images whose solve did not end ``optimal``/``optimal_inaccurate``, and
    ``diagnostics`` holds ``iterations``, the last ``status`` and ``gap`` per image and every
    solve's :class:`SolveInfo` (``solves``).

    Raises:
        InputError / ShapeError: bad images, labels or options.

    Shape:
        ``(N, 3, H, W)``, labels ``(N,)`` -> :class:`AttackResult`.
    """
    return create_attack("pgap", eps=eps2, **settings)(model, x, y)


register_attack(
    "fpgap",
    kind="perceptual",
    domain="classifier",
    norm="ssim",
    settings=FPGAPSettings,
    core=_fpgap_core,
    measure=_measure,
    description="FPGAP, closed-form steps under S2 >= 1 - eps2^2 (budget eps2)",
    reference="Pochimireddy et al., Algorithm 2",
)
register_attack(
    "pgap",
    kind="perceptual",
    domain="classifier",
    norm="ssim",
    settings=PGAPSettings,
    core=_pgap_core,
    measure=_measure,
    description="PGAP, one cvxpy QCQP per step (eq. 8/9, budget eps2)",
    reference="Pochimireddy et al., Algorithm 1",
)
