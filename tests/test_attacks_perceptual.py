"""PGAP / FPGAP: the SSIM factors against numpy and skimage, the closed-form step on the
S2 sphere, the closed form against cvxpy, the paper's printed radius, and the attacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torch import nn

from advsr.attacks.perceptual import (
    C1,
    C2,
    fpgap,
    fpgap_step,
    pgap,
    pgap_solve,
    s1,
    s1_mean_bounds,
    s2,
    s2_ball,
    ssim_global,
)
from advsr.data.labelled import open_labelled
from advsr.errors import InputError, ShapeError
from advsr.models.classifiers import Classifier, create_classifier

F64 = torch.float64


def _rand(*shape: int, seed: int = 0, normal: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    fn = torch.randn if normal else torch.rand
    return fn(*shape, generator=g, dtype=F64)


def _eta(eps: float) -> float:
    return 1.0 / (1.0 - eps * eps)


def _np_factors(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """S1, S2 from the moment form (population moments), values of one window."""
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cov = ((x - mx) * (y - my)).mean()
    return (2 * mx * my + C1) / (mx**2 + my**2 + C1), (2 * cov + C2) / (vx + vy + C2)


# ------------------------------------------------------------------------ SSIM factors


def test_s1_s2_match_the_moment_formulas_in_numpy() -> None:
    x = _rand(3, 3, 6, 5, seed=1)
    y = (x + 0.2 * _rand(3, 3, 6, 5, seed=2, normal=True)).clamp(0, 1)
    for i in range(3):
        a, b = x[i].numpy(), y[i].numpy()
        ref1, ref2 = _np_factors(a, b)
        assert float(s1(x, y)[i]) == pytest.approx(ref1, abs=1e-12)
        assert float(s2(x, y)[i]) == pytest.approx(ref2, abs=1e-12)
        for c in range(3):
            ref1, ref2 = _np_factors(a[c], b[c])
            assert float(s1(x, y, stats="channel")[i, c]) == pytest.approx(ref1, abs=1e-12)
            assert float(s2(x, y, stats="channel")[i, c]) == pytest.approx(ref2, abs=1e-12)
    assert s2(x, y).shape == (3,) and s2(x, y, stats="channel").shape == (3, 3)


def test_global_ssim_equals_skimage_with_one_window() -> None:
    # a window as large as the image: skimage's map has one valid value, the global SSIM
    kw = {"data_range": 1.0, "use_sample_covariance": False, "full": True}
    x = _rand(1, 3, 7, 7, seed=3)
    y = (x + 0.1 * _rand(1, 3, 7, 7, seed=4, normal=True)).clamp(0, 1)
    _, smap = structural_similarity(
        x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy(), channel_axis=-1, **kw
    )
    ours = ssim_global(x, y, stats="channel")[0].numpy()
    np.testing.assert_allclose(ours, smap[3, 3], rtol=0, atol=1e-12)
    # stats="image": the 3x3x3 volume as one 27-value window
    x, y = x[..., :3, :3], y[..., :3, :3]
    _, smap = structural_similarity(x[0].numpy(), y[0].numpy(), win_size=3, **kw)
    assert float(ssim_global(x, y)[0]) == pytest.approx(float(smap[1, 1, 1]), abs=1e-12)


def test_ball_and_mean_bounds_are_the_level_sets() -> None:
    x = _rand(2, 3, 8, 8, seed=5)
    for eps, stats in ((0.05, "image"), (0.2, "channel")):
        ball = s2_ball(x, eps, stats=stats)
        shape = (2, 1, 1, 1) if stats == "image" else (2, 3, 1, 1)
        u = _rand(2, 3, 8, 8, seed=6, normal=True)
        dims = (1, 2, 3) if stats == "image" else (2, 3)
        u = u - u.mean(dims, keepdim=True)
        u = u / u.square().sum(dims, keepdim=True).sqrt()
        for scale, cmp in ((1.0, "eq"), (0.5, "in"), (1.5, "out")):
            pt = 0.3 + ball.centre + scale * ball.radius2.sqrt().view(shape) * u
            val = s2(x, pt, stats=stats)
            if cmp == "eq":
                assert torch.allclose(val, torch.full_like(val, 1 - eps**2), atol=1e-12, rtol=0)
            elif cmp == "in":
                assert (val > 1 - eps**2).all()
            else:
                assert (val < 1 - eps**2).all()
        lo, hi = s1_mean_bounds(x, eps, stats=stats)
        for bound in (lo, hi):
            pt = x - x.mean(dims, keepdim=True) + bound.view(shape)
            val = s1(x, pt, stats=stats)
            assert torch.allclose(val, torch.full_like(val, 1 - eps**2), atol=1e-12, rtol=0)
    lo, hi = s1_mean_bounds(x, 0.0)
    assert torch.allclose(lo, x.mean((1, 2, 3))) and torch.allclose(hi, lo)
    # the paper's printed k11 at eps1 = 0 allows any mean in [0, 2 mu]
    lo, hi = s1_mean_bounds(x, 0.0, radius="paper")
    assert torch.allclose(lo, torch.zeros(2, dtype=F64), atol=1e-15)
    assert torch.allclose(hi, 2 * x.mean((1, 2, 3)))


# ----------------------------------------------------------------- closed-form step


@pytest.mark.parametrize("stats", ["image", "channel"])
def test_fpgap_step_lands_on_the_s2_sphere_with_the_mean_fixed(stats: str) -> None:
    dims = (1, 2, 3) if stats == "image" else (2, 3)
    for seed, eps in ((0, 0.01), (1, 0.05), (2, 0.3), (3, 0.9)):
        x = _rand(4, 3, 9, 7, seed=seed)
        grad = _rand(4, 3, 9, 7, seed=seed + 10, normal=True) * 10.0 ** (seed - 2)
        x_adv = fpgap_step(x, grad, eps, stats=stats)
        val = s2(x, x_adv, stats=stats)
        assert torch.allclose(val, torch.full_like(val, 1 - eps**2), atol=1e-6, rtol=0)
        assert (val - (1 - eps**2)).abs().max() < 1e-12  # in fact to rounding
        assert torch.allclose(x_adv.mean(dims), x.mean(dims), atol=1e-14, rtol=0)
        # it increases the linear objective over every other point of the set tried
        ball = s2_ball(x, eps, stats=stats)
        shape = (4, 1, 1, 1) if stats == "image" else (4, 3, 1, 1)
        for k in range(5):
            u = _rand(4, 3, 9, 7, seed=100 + k, normal=True)
            u = u - u.mean(dims, keepdim=True)
            u = u / u.square().sum(dims, keepdim=True).sqrt()
            other = x.mean(dims, keepdim=True) + ball.centre + ball.radius2.sqrt().view(shape) * u
            assert ((x_adv - other) * grad).sum((1, 2, 3)).min() > 0


def test_fpgap_step_with_a_constant_gradient_returns_the_centre() -> None:
    x = _rand(1, 3, 5, 5)
    out = fpgap_step(x, torch.ones_like(x), 0.1)
    assert torch.allclose(out, x.mean() + x.sub(x.mean()) * _eta(0.1), atol=1e-15)


def test_paper_radius_gives_two_thirds_not_0_9975() -> None:
    eps = 0.05
    eta = _eta(eps)
    x = _rand(1, 3, 32, 32, seed=7)
    a = (x - x.mean()).flatten()
    g = _rand(1, 3, 32, 32, seed=8, normal=True).flatten()
    g = g - g.mean()
    g = (g - (g @ a) / (a @ a) * a).view(1, 3, 32, 32)  # a step orthogonal to a
    paper = float(s2(x, fpgap_step(x, g, eps, radius="paper"))[0])
    norm2, c = float(a @ a), 3072 * C2
    expected = (2 * eta * norm2 + c) / ((1 + 2 * eta**2) * norm2 + (1 + eta * eps**2) * c)
    assert paper == pytest.approx(expected, abs=1e-12)
    assert paper == pytest.approx(0.66730, abs=1e-4)  # uniform random 3x32x32 image
    assert 2 * eta / (1 + 2 * eta**2) == pytest.approx(0.666109, abs=1e-6)  # c -> 0 limit
    corrected = float(s2(x, fpgap_step(x, g, eps))[0])
    assert corrected == pytest.approx(0.9975, abs=1e-12)
    # eq. (10) as printed (raw gradient): the mean moves, S2 stays inside the ball
    raw = _rand(1, 3, 32, 32, seed=9, normal=True) + 0.5
    lit = fpgap_step(x, raw, eps, project=False)
    assert abs(float(lit.mean() - x.mean())) > 1e-3
    assert float(s1(x, lit)[0]) < 1 - 1e-6
    assert float(s2(x, lit)[0]) > 0.9975 + 1e-6


# -------------------------------------------------------------------------- cvxpy


@pytest.mark.parametrize("stats", ["image", "channel"])
def test_pgap_eq9_without_box_equals_the_closed_form(stats: str) -> None:
    x = _rand(1, 3, 8, 8, seed=11)
    grad = _rand(1, 3, 8, 8, seed=12, normal=True)
    sol = pgap_solve(x, grad, 0.05, box=False, stats=stats)
    assert sol.info.status == "optimal" and sol.x_adv is not None
    assert sol.info.gap < 1e-6
    closed = fpgap_step(x, grad, 0.05, stats=stats)
    assert (sol.x_adv - closed).abs().max() < 1e-6  # CLARABEL's tolerance is 1e-8
    scs = pgap_solve(x, grad, 0.05, box=False, stats=stats, solver="scs")
    assert scs.info.status in ("optimal", "optimal_inaccurate") and scs.x_adv is not None
    assert (scs.x_adv - closed).abs().max() < 1e-3  # SCS is first-order


def test_pgap_eq8_meets_both_constraints_and_its_closed_form() -> None:
    eps1, eps2 = 0.05, 0.1
    x = _rand(1, 3, 8, 8, seed=13)
    grad = _rand(1, 3, 8, 8, seed=14, normal=True) + 0.1
    boxed = pgap_solve(x, grad, eps2, eps1=eps1)
    assert boxed.info.status == "optimal" and boxed.x_adv is not None
    xa = boxed.x_adv
    assert float(s1(x, xa)[0]) >= 1 - eps1**2 - 1e-7
    assert float(s2(x, xa)[0]) >= 1 - eps2**2 - 1e-7
    assert float(xa.min()) >= -1e-7 and float(xa.max()) <= 1 + 1e-7
    assert float(s2(x, xa)[0]) == pytest.approx(1 - eps2**2, abs=1e-6)  # the ball is active
    # without the box the problem separates: mean at the bound that sum(g) favours, and
    # the centred part is FPGAP's step
    free = pgap_solve(x, grad, eps2, eps1=eps1, box=False)
    assert free.x_adv is not None
    lo, hi = s1_mean_bounds(x, eps1)
    m = hi if float(grad.sum()) > 0 else lo
    ref = fpgap_step(x, grad, eps2) - x.mean() + m.view(1, 1, 1, 1)
    assert (free.x_adv - ref).abs().max() < 1e-6
    assert float(s1(x, free.x_adv)[0]) == pytest.approx(1 - eps1**2, abs=1e-8)


def test_pgap_eq9_with_box_is_feasible_and_beats_the_clipped_step() -> None:
    x = _rand(1, 3, 8, 8, seed=15)
    grad = _rand(1, 3, 8, 8, seed=16, normal=True)
    sol = pgap_solve(x, grad, 0.3, stats="channel")
    assert sol.info.status == "optimal" and sol.x_adv is not None
    xa = sol.x_adv
    assert (s2(x, xa, stats="channel") >= 1 - 0.09 - 1e-7).all()
    assert torch.allclose(xa.mean((2, 3)), x.mean((2, 3)), atol=1e-8)
    assert float(xa.min()) >= -1e-8 and float(xa.max()) <= 1 + 1e-8
    clipped = fpgap_step(x, grad, 0.3, stats="channel").clamp(0, 1)
    assert float((clipped - fpgap_step(x, grad, 0.3, stats="channel")).abs().max()) > 0.01
    assert float((xa * grad).sum()) >= float((clipped * grad).sum()) - 1e-6


# ------------------------------------------------------------------------- attacks


def _tiny_classifier() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 4),
    )
    return Classifier(net, (0.5,) * 3, (0.25,) * 3, 4).eval()


def test_fpgap_fools_the_digits_cnn_within_the_ssim_budget() -> None:
    data = open_labelled("digits-test", limit=16)
    clf = create_classifier("digits-cnn").train()
    x, y = data.x, data.y
    keep = x.clone()
    with torch.no_grad():
        assert int((clf.eval()(x).argmax(1) == y).sum()) == 16
    clf.train()
    out = fpgap(clf, x, y, eps2=0.2, steps=10)
    assert clf.training and torch.equal(x, keep)
    assert int(out.success.sum()) >= 15  # measured 16/16
    with torch.no_grad():
        assert torch.equal(out.success, clf.eval()(out.x_adv).argmax(1) != y)
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert (out.diagnostics["iterations"] >= 1).all()
    # anchored at the original, clipped to [0, 1]: S2 stays near the S2 = 1 - eps2^2 sphere
    assert (out.outputs["s2"] > 0.95).all() and torch.allclose(
        out.outputs["s1"], torch.ones(16), atol=1e-3
    )
    unclipped_steps = fpgap(clf, x, y, eps2=0.2, steps=10, clip=False)
    assert int(unclipped_steps.success.sum()) >= 15  # the base still returns [0, 1] images
    assert unclipped_steps.x_adv.min() >= 0 and unclipped_steps.x_adv.max() <= 1
    # drift (Algorithm 2 as printed): smaller steps, but S2 is not bounded by eps2
    drift = fpgap(clf, x, y, eps2=0.05, anchor="drift", loss="ce")
    assert int(drift.success.sum()) == 16
    assert float(drift.outputs["s2"].min()) < 0.9975 - 1e-3
    assert float(drift.outputs["ssim_global"].mean()) > 0.98
    assert not bool(drift.outputs["within_budget"].all())  # reported, not hidden


def test_fpgap_stops_each_image_and_reaches_targets() -> None:
    model = _tiny_classifier()
    x = _rand(6, 3, 8, 8, seed=17).float()
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred.clone()
    y[0] = (pred[0] + 1) % 4  # already misclassified: returned unchanged, 0 steps
    out = fpgap(model, x, y, eps2=0.5, steps=20)
    assert int(out.diagnostics["iterations"][0]) == 0 and torch.equal(out.x_adv[0], x[0])
    assert bool(out.success[0]) and int(out.success.sum()) >= 5
    target = (pred + 1) % 4
    kw = {"steps": 20, "targeted": True, "stats": "channel"}
    tgt = fpgap(model, x, target, eps2=0.3, anchor="drift", **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        reached = model(tgt.x_adv).argmax(1) == target
    assert torch.equal(tgt.success, reached) and int(reached.sum()) >= 5  # measured 6/6
    assert tgt.outputs["s2"].shape == (6, 3)


def test_pgap_fools_and_equals_fpgap_where_the_problems_coincide() -> None:
    model = _tiny_classifier().double().train()
    x = _rand(4, 3, 8, 8, seed=18)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    model.train()
    keep = x.clone()
    res = pgap(model, x, y, eps2=0.5, steps=5)
    d = res.diagnostics
    assert model.training and torch.equal(x, keep)
    assert int(res.success.sum()) >= 3
    assert all(s == "optimal" for s in d["status"]) and not res.failed.any()
    assert (d["gap"] < 1e-6).all() and (d["iterations"] >= 1).all()
    s2_ = res.outputs["s2"]
    assert (s2_ >= 1 - 0.25 - 1e-6).all()  # box: the constraint holds without clipping
    assert res.outputs["within_budget"].all()
    assert torch.allclose(res.x_adv.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-7)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert [len(s) for s in d["solves"]] == d["iterations"].tolist()
    assert [r["status"] for r in res.per_image()] == list(d["status"])  # stored per image
    # no box: PGAP's QCQP solution is FPGAP's step (then both clip)
    free = pgap(model, x, y, eps2=0.5, steps=5, box=False)
    fast = fpgap(model, x, y, eps2=0.5, steps=5)
    assert torch.equal(free.diagnostics["iterations"], fast.diagnostics["iterations"])
    assert (free.x_adv - fast.x_adv).abs().max() < 1e-6


def test_pgap_reports_a_failed_solve_and_keeps_the_last_iterate() -> None:
    model = _tiny_classifier()
    x = _rand(2, 3, 8, 8, seed=19).float()
    with torch.no_grad():
        y = model(x).argmax(1)
    res = pgap(model, x, y, eps2=0.5, steps=3, solver_options={"max_iter": 1})
    d = res.diagnostics
    assert d["status"] == ("user_limit", "user_limit") and res.failed.all()
    assert d["iterations"].tolist() == [1, 1]  # stopped after the failure
    assert torch.equal(res.x_adv, x) and not res.success.any()
    assert all(math.isfinite(g) for g in d["gap"].tolist())
    assert all(r["failed"] == 1.0 for r in res.per_image())  # never counted silently


def test_bad_inputs_raise_one_line_errors() -> None:
    model = _tiny_classifier()
    x = _rand(2, 3, 8, 8, seed=20).float()
    y = torch.tensor([0, 1])
    for eps2 in (0.0, 1.0, -0.1, float("nan"), True, "x"):
        with pytest.raises(InputError, match="eps2") as exc:
            fpgap(model, x, y, eps2=eps2)  # type: ignore[arg-type]
        assert "\n" not in str(exc.value)
    bad = [
        ({"steps": 0}, "steps"),
        ({"loss": "l2"}, "loss"),
        ({"anchor": "x"}, "anchor"),
        ({"stats": "pixel"}, "stats"),
        ({"radius": "big"}, "radius"),
        ({"kappa": -1.0}, "kappa"),
    ]
    for kw, word in bad:
        with pytest.raises(InputError, match=word):
            fpgap(model, x, y, **kw)  # type: ignore[arg-type]
        with pytest.raises(InputError, match=word):
            pgap(model, x, y, **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="eps1"):
        pgap(model, x, y, eps1=1.0)
    with pytest.raises(InputError, match="solver"):
        pgap(model, x, y, solver="MOSEK")
    with pytest.raises(ShapeError, match="labels"):
        fpgap(model, x, y[:1])
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        fpgap(model, x + 1, y)
    with pytest.raises(ShapeError, match="one image"):
        pgap_solve(x, x, 0.1)
    with pytest.raises(ShapeError, match="does not match"):
        s2(x, x[:1])
    with pytest.raises(InputError, match="eps1"):
        s1_mean_bounds(x, -0.5)
