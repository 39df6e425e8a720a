"""TVM defense: objective against an independent numpy port, quality against ART's solver.

The reference solver ports ART's ``TotalVarMin._minimize`` (scipy L-BFGS-B, ``maxiter=10``,
started from ``x``, one channel at a time, with ART's gradient including its factor ``p`` on
the ``p = 2`` TV term); a second reference uses the exact gradient. Ours must reach an
objective value no larger than both on every channel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from skimage import data, transform

from advsr.defenses.base import Defense
from advsr.defenses.tvm import TVMDefense, tv_minimize, tv_objective
from advsr.errors import InputError, ShapeError

LAM = 0.5


def np_objective(z: np.ndarray, x: np.ndarray, m: np.ndarray, lam: float, p: int) -> float:
    """``||m o (z - x)||_2 + lam (sum_i ||z_i,: - z_i-1,:||_p + sum_j ||z_:,j - z_:,j-1||_p)``."""
    data_term = np.sqrt(np.sum(m * (z - x) ** 2))
    rows = np.sum(np.sum(np.abs(np.diff(z, axis=0)) ** p, axis=1) ** (1 / p))
    cols = np.sum(np.sum(np.abs(np.diff(z, axis=1)) ** p, axis=0) ** (1 / p))
    return float(data_term + lam * (rows + cols))


def _grad(zf: np.ndarray, x: np.ndarray, m: np.ndarray, lam: float, p: int, art: bool):
    """Gradient of :func:`np_objective`; ``art=True`` reproduces ART's ``_deri_loss_func``."""
    z = zf.reshape(x.shape)
    res = max(np.sqrt(np.sum(m * (z - x) ** 2)), 1e-6)
    g = m * (z - x) / res
    dr, dc = np.diff(z, axis=0), np.diff(z, axis=1)
    if p == 1:
        a, b = np.sign(dr), np.sign(dc)
    else:
        scale = p if art else 1  # ART: norm * v / ||v|| instead of v / ||v||
        a = scale * dr / np.maximum(np.sqrt(np.sum(dr**2, axis=1)), 1e-6)[:, None]
        b = scale * dc / np.maximum(np.sqrt(np.sum(dc**2, axis=0)), 1e-6)[None, :]
    tv = np.zeros_like(z)
    tv[:-1] -= a
    tv[1:] += a
    tv[:, :-1] -= b
    tv[:, 1:] += b
    return (g + lam * tv).ravel()


def art_port(x: np.ndarray, m: np.ndarray, lam: float, p: int, art: bool = True) -> np.ndarray:
    """ART's procedure on a ``(C, H, W)`` image: L-BFGS-B, 10 iterations per channel."""
    out = x.copy()
    for k in range(x.shape[0]):
        res = minimize(
            lambda zf, k=k: np_objective(zf.reshape(x[k].shape), x[k], m[k], lam, p),
            x[k].ravel().copy(),
            method="L-BFGS-B",
            jac=lambda zf, k=k: _grad(zf, x[k], m[k], lam, p, art),
            options={"maxiter": 10},
        )
        out[k] = res.x.reshape(x[k].shape)
    return out


def _image(name: str = "astronaut", size: int = 32) -> np.ndarray:
    """A natural ``(3, size, size)`` float64 image in [0, 1] with mild noise."""
    im = transform.resize(getattr(data, name)(), (size, size), anti_aliasing=True)
    noise = np.random.default_rng(0).normal(0.0, 0.02, im.shape)
    return np.clip(im + noise, 0.0, 1.0).transpose(2, 0, 1).copy()


def _mask(shape: tuple[int, ...], keep: float, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < keep).astype(np.float64)


def test_objective_matches_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 7, generator=g, dtype=torch.float64)
    z = torch.rand(2, 3, 9, 7, generator=g, dtype=torch.float64)
    m = torch.rand(2, 3, 9, 7, generator=g) < 0.4
    for p in (1, 2):
        ours = tv_objective(z, x, m, lam=0.3, norm=p)
        for i in range(2):
            for k in range(3):
                ref = np_objective(z[i, k].numpy(), x[i, k].numpy(), m[i, k].numpy(), 0.3, p)
                assert ours[i, k].item() == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("keep", [0.1, 0.25, 1.0])
@pytest.mark.parametrize("p", [1, 2])
def test_objective_not_above_art(name: str, keep: float, p: int) -> None:
    x = _image(name)
    m = _mask(x.shape, keep)
    ref_art = art_port(x, m, LAM, p, art=True)
    ref_exact = art_port(x, m, LAM, p, art=False)
    z64 = tv_minimize(torch.from_numpy(x)[None], torch.from_numpy(m)[None], lam=LAM, norm=p)
    z32 = tv_minimize(
        torch.from_numpy(x).float()[None], torch.from_numpy(m).float()[None], lam=LAM, norm=p
    )
    assert z32.dtype == torch.float32
    for k in range(3):
        f_x = np_objective(x[k], x[k], m[k], LAM, p)
        f_art = np_objective(ref_art[k], x[k], m[k], LAM, p)
        f_exact = np_objective(ref_exact[k], x[k], m[k], LAM, p)
        f64 = np_objective(z64[0, k].numpy(), x[k], m[k], LAM, p)
        f32 = np_objective(z32[0, k].double().numpy(), x[k], m[k], LAM, p)
        assert f_art < f_x  # the reference made progress: the comparison means something
        assert f64 <= f_art * (1 + 1e-9), (k, f64, f_art)
        assert f64 <= f_exact * (1 + 1e-9), (k, f64, f_exact)
        assert f32 <= f_art * (1 + 1e-5), (k, f32, f_art)


def test_lam_zero_and_exact_penalty_return_x() -> None:
    x = torch.from_numpy(_image())[None]
    keep_all = torch.ones_like(x)
    assert torch.equal(tv_minimize(x, keep_all, lam=0.0), x)
    d = TVMDefense(p=1.0, lam=0.0)
    assert torch.equal(d(x.float(), torch.Generator().manual_seed(0)), x.float())
    # keep-all, p = 2: the data term is a norm, so x is the exact minimiser as soon as some
    # lam-subgradient y of TV at x has ||K^T y|| <= 1; ||K^T y|| <= sqrt(8) lam sqrt(#groups)
    lam = 0.01
    assert np.sqrt(8) * lam * np.sqrt(2 * 31) < 1
    z = tv_minimize(x, keep_all, lam=lam, norm=2)
    torch.testing.assert_close(z, x, atol=1e-9, rtol=0)
    # whereas the default lam moves it (the TV term dominates)
    assert (tv_minimize(x, keep_all, norm=2) - x).abs().max() > 0.05


def test_batch_and_blocks_are_independent_problems() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 12, 10, generator=g, dtype=torch.float64)
    m = torch.rand(x.shape, generator=g) < 0.3
    for p in (1, 2):
        whole = tv_minimize(x, m, norm=p)
        for block in (1, 2, 9):
            torch.testing.assert_close(tv_minimize(x, m, norm=p, block=block), whole)
        single = torch.cat([tv_minimize(x[i : i + 1], m[i : i + 1], norm=p) for i in range(3)])
        torch.testing.assert_close(single, whole)


def test_shared_mask_broadcasts() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 8, 8, generator=g)
    m1 = torch.rand(2, 1, 8, 8, generator=g) < 0.5
    torch.testing.assert_close(tv_minimize(x, m1), tv_minimize(x, m1.expand(2, 3, 8, 8)))
    with pytest.raises(ShapeError):
        tv_minimize(x, torch.ones(2, 3, 8, 9))
    with pytest.raises(ShapeError):
        tv_minimize(x[0], torch.ones(3, 8, 8))


def test_defense_flags_and_surrogate() -> None:
    d = TVMDefense()
    assert isinstance(d, Defense)
    assert d.stochastic and not d.differentiable
    x = torch.rand(1, 3, 6, 6)
    assert d.surrogate(x) is x
    assert (d.p, d.lam, d.norm, d.steps, d.per_channel_mask) == (0.3, 0.5, 2, 20, True)


def test_defense_deterministic_given_generator() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    d = TVMDefense(p=0.25)
    a = d(x, torch.Generator().manual_seed(7))
    b = d(x, torch.Generator().manual_seed(7))
    c = d(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the kernel applies the drawn mask: same draw, same result (before the clamp)
    mask = d.draw_mask(x.shape, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, tv_minimize(x, mask).clamp(0, 1))


def test_defense_output_contract() -> None:
    x = torch.rand(2, 3, 20, 17, generator=torch.Generator().manual_seed(6))
    for norm in (1, 2):
        y = TVMDefense(p=0.1, norm=norm, steps=5)(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == torch.float32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    with pytest.raises(ShapeError):
        TVMDefense()(torch.rand(1, 1, 8, 8))


def test_mask_statistics_and_sharing() -> None:
    g = torch.Generator().manual_seed(9)
    m = TVMDefense(p=0.25).draw_mask((4, 3, 50, 50), g)
    assert m.shape == (4, 3, 50, 50) and m.dtype == torch.bool
    frac = m.float().mean().item()  # 30000 Bernoulli(0.25): sd 0.0025
    assert abs(frac - 0.25) < 0.01
    assert not torch.equal(m[:, 0], m[:, 1])  # ART: one draw per pixel and channel
    shared = TVMDefense(p=0.25, per_channel_mask=False).draw_mask((4, 3, 50, 50), g)
    assert shared.shape == (4, 1, 50, 50)
    assert TVMDefense(p=1.0).draw_mask((1, 3, 5, 5)).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p": 0.0},
        {"p": -0.1},
        {"p": 1.5},
        {"p": True},
        {"lam": -0.1},
        {"lam": float("nan")},
        {"norm": 3},
        {"norm": 0},
        {"steps": 0},
        {"steps": 2.5},
    ],
)
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(InputError):
        TVMDefense(**kwargs)


def test_bad_kernel_parameters() -> None:
    x, m = torch.rand(1, 3, 5, 5), torch.ones(1, 3, 5, 5)
    for kwargs in ({"step_ratio": 0.0}, {"block": 0}, {"norm": 3}, {"lam": -1.0}):
        with pytest.raises(InputError):
            tv_minimize(x, m, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) < 0.3
    cpu = tv_minimize(x, m)
    gpu = tv_minimize(x.cuda(), m.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu)
