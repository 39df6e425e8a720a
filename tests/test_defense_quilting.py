"""Image quilting (Guo et al. 2018): patch bank, exact NN search, boundary cut, compositing.

References are independent: ``torch.cdist`` for the search, ``F.unfold`` for the bank, and
straightforward numpy loops for the minimum-error boundary cut and for the whole raster-order
quilting (Efros & Freeman with pairwise seams). Everything is float64 where exact equality
is asserted, so that no near-tie can flip a nearest neighbour.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advsr.defenses.base import Defense
from advsr.defenses.quilting import (
    PatchBank,
    Quilting,
    min_error_boundary_cut,
    nearest_patches,
    patch_grid,
    quilt,
)
from advsr.errors import InputError, ModelLoadError, ShapeError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_images(n: int, h: int, w: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Random images with some structure (low-resolution noise upsampled)."""
    g = _gen(seed)
    low = torch.rand(n, 3, max(2, h // 4), max(2, w // 4), generator=g, dtype=torch.float64)
    x = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    x = x + 0.05 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)
    return x.clamp(0, 1).to(dtype)


# --- numpy references ------------------------------------------------------------------------


def np_boundary_cut(cost: np.ndarray) -> list[int]:
    """Efros & Freeman's minimum-error boundary cut, loop by loop (rows along the seam)."""
    rows, cols = cost.shape
    e = np.empty_like(cost)
    e[0] = cost[0]
    for r in range(1, rows):
        for c in range(cols):
            m = e[r - 1, c]
            if c > 0:
                m = min(m, e[r - 1, c - 1])
            if c < cols - 1:
                m = min(m, e[r - 1, c + 1])
            e[r, c] = cost[r, c] + m
    seam = [int(np.argmin(e[-1]))]  # lowest column on ties
    for r in range(rows - 2, -1, -1):
        c = best = seam[-1]  # straight on unless strictly cheaper; left before right
        for cand in (c - 1, c + 1):
            if 0 <= cand < cols and e[r, cand] < e[r, best]:
                best = cand
        seam.append(best)
    return seam[::-1]


def np_grid(size: int, s: int, t: int) -> list[int]:
    pos = list(range(0, size - s + 1, t))
    return pos if pos[-1] == size - s else [*pos, size - s]


def np_quilt(img: np.ndarray, bank: np.ndarray, s: int, o: int, mode: str) -> np.ndarray:
    """Raster-order quilting with K = 1: NN by brute force, seams against the chosen left and
    top neighbours, each patch written where its mask is set (later patches win)."""
    _, h, w = img.shape
    ys, xs = np_grid(h, s, s - o), np_grid(w, s, s - o)
    chosen = {}
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            q = img[:, y : y + s, x : x + s]
            chosen[iy, ix] = bank[np.argmin(((bank - q) ** 2).sum(axis=(1, 2, 3)))]
    out = np.full_like(img, np.nan)
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            p = chosen[iy, ix]
            keep = np.ones((s, s), dtype=bool)
            if mode == "min-cut" and ix > 0:
                ow = xs[ix - 1] + s - x
                if ow > 0:
                    left = chosen[iy, ix - 1]
                    cost = ((left[:, :, s - ow :] - p[:, :, :ow]) ** 2).sum(0)  # (s, ow)
                    for r, c in enumerate(np_boundary_cut(cost)):
                        keep[r, :c] = False
            if mode == "min-cut" and iy > 0:
                oh = ys[iy - 1] + s - y
                if oh > 0:
                    top = chosen[iy - 1, ix]
                    cost = ((top[:, s - oh :, :] - p[:, :oh, :]) ** 2).sum(0)  # (oh, s)
                    for c, r in enumerate(np_boundary_cut(cost.T)):
                        keep[:r, c] = False
            region = out[:, y : y + s, x : x + s]
            region[:, keep] = p[:, keep]
    return out


# --- building blocks -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _pruned_for_any_size(monkeypatch):
    """The pruned search's tests use small query sets, which otherwise run dense."""
    import advsr.defenses.quilting as quilting

    monkeypatch.setattr(quilting, "PRUNED_MIN_QUERIES", 0)


def test_small_searches_run_dense(monkeypatch) -> None:
    """Below PRUNED_MIN_QUERIES queries, search="pruned" returns what the dense search does
    (tie order included)."""
    import advsr.defenses.quilting as quilting

    monkeypatch.setattr(quilting, "PRUNED_MIN_QUERIES", 10**9)
    g = torch.Generator().manual_seed(4)
    bank = torch.rand(300, 12, generator=g).repeat(2, 1)  # exact ties everywhere
    q = torch.rand(40, 12, generator=g)
    a = nearest_patches(q, bank, 5, search="pruned")
    b = nearest_patches(q, bank, 5, search="dense")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_boundary_cut_matches_numpy_port() -> None:
    rng = np.random.default_rng(0)
    for rows, cols in [(5, 1), (5, 2), (5, 4), (9, 3), (7, 6)]:
        for ties in (False, True):
            b = 40
            if ties:  # small integers: many equal costs exercise the tie rules
                cost = rng.integers(0, 3, size=(b, rows, cols)).astype(np.float64)
            else:
                cost = rng.random((b, rows, cols))
            got = min_error_boundary_cut(torch.from_numpy(cost)).numpy()
            want = np.array([np_boundary_cut(c) for c in cost])
            np.testing.assert_array_equal(got, want)
            # the seam is a connected path and its cost is the DP minimum
            assert np.abs(np.diff(got, axis=1)).max(initial=0) <= 1


def test_boundary_cut_on_random_overlaps_and_inf_padding() -> None:
    g = _gen(1)
    old, new = torch.rand(30, 3, 5, 2, generator=g), torch.rand(30, 3, 5, 2, generator=g)
    cost = (old - new).pow(2).sum(1).double()
    want = np.array([np_boundary_cut(c) for c in cost.numpy()])
    np.testing.assert_array_equal(min_error_boundary_cut(cost).numpy(), want)
    # padding with inf columns (wider overlaps batched together) does not change the seam
    padded = torch.cat([cost, torch.full((30, 5, 2), float("inf"), dtype=cost.dtype)], 2)
    np.testing.assert_array_equal(min_error_boundary_cut(padded).numpy(), want)


def test_nearest_patches_matches_cdist() -> None:
    g = _gen(2)
    q = torch.rand(400, 75, generator=g, dtype=torch.float64)
    b = torch.rand(3000, 75, generator=g, dtype=torch.float64)
    ref = torch.cdist(q, b)
    for k in (1, 7):
        # 320 x 320 blocks: 2 query chunks x 10 bank chunks (exercises the running top-k merge)
        d2, idx = nearest_patches(q, b, k, block_elements=320 * 320)
        want = ref.argsort(dim=1, stable=True)[:, :k]
        assert torch.equal(idx, want)
        torch.testing.assert_close(d2, ref.gather(1, want) ** 2, rtol=1e-10, atol=1e-10)
    d2, idx = nearest_patches(q[:5], b[:4], 10)  # k larger than the bank: all, sorted
    assert idx.shape == (5, 4)
    assert torch.equal(idx, torch.cdist(q[:5], b[:4]).argsort(dim=1, stable=True))


def _natural_patches(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Flattened 5 x 5 patches of smooth random images (norms spread like natural ones)."""
    x = _smooth_images(max(1, n // 400 + 1), 64, 64, seed=seed, dtype=dtype)
    p = F.unfold(x, kernel_size=5, stride=1).permute(0, 2, 1).reshape(-1, 75)
    return p[torch.randperm(p.shape[0], generator=_gen(seed))[:n]].contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pruned_search_equals_brute_force(dtype) -> None:
    # a bank large enough for the norm pruning to skip most of it (and not a multiple of 16)
    b = _natural_patches(5003, seed=20, dtype=dtype)
    q = _natural_patches(700, seed=21, dtype=dtype)
    brute = ((q[:, None, :].double() - b[None, :, :].double()) ** 2).sum(-1)
    for k in (1, 10):
        d2, idx = nearest_patches(q, b, k)
        want = brute.argsort(dim=1, stable=True)[:, :k]
        tol = 1e-10 if dtype == torch.float64 else 1e-4  # float32: ||q||^2 - 2q.b + ||b||^2
        if dtype == torch.float64:  # float32 rounding could swap a near-tie
            assert torch.equal(idx, want)
        torch.testing.assert_close(d2.double(), brute.gather(1, want), rtol=tol, atol=tol)
        torch.testing.assert_close(brute.gather(1, idx), brute.gather(1, want), rtol=tol, atol=tol)
        # the dense search finds the same neighbours; in float32 (the defense's dtype) with
        # bit-identical distances (same product kernel), in float64 up to rounding
        d2_dense, idx_dense = nearest_patches(q, b, k, search="dense")
        assert torch.equal(idx, idx_dense)
        if dtype == torch.float32:
            assert torch.equal(d2, d2_dense)
        torch.testing.assert_close(d2, d2_dense, rtol=1e-12, atol=1e-12)


def test_pruned_search_ties_by_index_and_small_memory_blocks() -> None:
    b = _natural_patches(3000, seed=22)
    b = torch.cat([b, b[:100], b[:50]])  # duplicated rows: exactly equal distances
    q = torch.cat([b[:40], _natural_patches(200, seed=23)])
    d2, idx = nearest_patches(q, b, 4, block_elements=4096)
    brute = torch.cdist(q.double(), b.double()).pow(2)
    assert torch.equal(idx, brute.argsort(dim=1, stable=True)[:, :4])
    # a query equal to a bank row with two copies: the row itself, then its copies in index order
    assert idx[:40, 0].tolist() == list(range(40)) and (d2[:40, 0] < 1e-4).all()
    assert idx[:40, 1].tolist() == [3000 + i for i in range(40)]
    assert idx[:40, 2].tolist() == [3100 + i for i in range(40)]


def test_pruned_search_does_not_depend_on_the_other_queries() -> None:
    b = _natural_patches(4000, seed=24)
    q = _natural_patches(600, seed=25)
    d2, idx = nearest_patches(q, b, 10)
    d2_part, idx_part = nearest_patches(q[::7], b, 10)
    assert torch.equal(idx_part, idx[::7]) and torch.equal(d2_part, d2[::7])
    with pytest.raises(InputError, match="search"):
        nearest_patches(q, b, 10, search="approx")  # type: ignore[arg-type]


def test_quilting_search_modes_give_the_same_image() -> None:
    x = _smooth_images(2, 40, 36, seed=26)
    bank = PatchBank.from_images(_smooth_images(6, 48, 48, seed=27), 5, stride=1)
    pruned = Quilting(bank, k=10)(x, generator=_gen(3))
    dense = Quilting(bank, k=10, search="dense")(x, generator=_gen(3))
    assert torch.equal(pruned, dense)
    assert pruned.shape == x.shape and 0.0 <= float(pruned.min()) <= float(pruned.max()) <= 1.0


def test_patch_grid_covers_border() -> None:
    assert patch_grid(32, 5, 3) == list(range(0, 28, 3))
    assert patch_grid(33, 5, 3) == [*range(0, 28, 3), 28]
    assert patch_grid(5, 5, 3) == [0]
    with pytest.raises(ShapeError):
        patch_grid(4, 5, 3)


def test_bank_from_images_matches_unfold_and_subset() -> None:
    imgs = _smooth_images(3, 11, 9, seed=3)
    bank = PatchBank.from_images(imgs, 4, stride=2)
    want = F.unfold(imgs, kernel_size=4, stride=2).permute(0, 2, 1).reshape(-1, 48)
    assert bank.patch_size == 4 and torch.equal(bank.patches, want)
    sub = PatchBank.from_images(imgs, 4, stride=2, max_patches=10, generator=_gen(0))
    again = PatchBank.from_images(imgs, 4, stride=2, max_patches=10, generator=_gen(0))
    other = PatchBank.from_images(imgs, 4, stride=2, max_patches=10, generator=_gen(1))
    assert len(sub) == 10 and torch.equal(sub.patches, again.patches)
    assert not torch.equal(sub.patches, other.patches)
    # every sampled row is a distinct row of the full bank
    match = (sub.patches[:, None] == want[None]).all(-1)
    assert (match.sum(1) == 1).all() and len(set(match.float().argmax(1).tolist())) == 10


def test_bank_save_load(tmp_path) -> None:
    bank = PatchBank.from_images(_smooth_images(2, 12, 12, seed=4), 5, stride=3)
    path = tmp_path / "bank.safetensors"
    bank.save(path)
    back = PatchBank.load(path)
    assert back.patch_size == 5 and torch.equal(back.patches, bank.patches)
    d = Quilting.from_file(path, k=1)
    assert d.patch_size == 5 and torch.equal(d.patches, bank.patches)
    from advsr.io import save_safetensors

    save_safetensors(tmp_path / "other.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(ModelLoadError):
        PatchBank.load(tmp_path / "other.safetensors")


# --- quilting --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(24, 24), (33, 29)])
@pytest.mark.parametrize("stitch", ["min-cut", "overwrite"])
def test_self_bank_k1_is_identity(size, stitch) -> None:
    x = _smooth_images(2, *size, seed=5)
    bank = PatchBank.from_images(x, 5, stride=1)  # every input patch is in the bank
    y = quilt(x, bank, patch_size=5, overlap=2, k=1, stitch=stitch)
    assert torch.equal(y, x)
    y = Quilting(bank, k=1, stitch=stitch)(x)
    assert torch.equal(y, x)


@pytest.mark.parametrize("size", [(20, 17), (33, 29)])
@pytest.mark.parametrize(("s", "o"), [(5, 2), (4, 1), (6, 3), (5, 0)])
@pytest.mark.parametrize("stitch", ["min-cut", "overwrite"])
def test_quilt_matches_numpy_raster_reference(size, s, o, stitch) -> None:
    x = _smooth_images(2, *size, seed=6, dtype=torch.float64)
    clean = _smooth_images(4, 16, 16, seed=7, dtype=torch.float64)
    bank = PatchBank.from_images(clean, s, stride=2)
    y = quilt(x, bank, patch_size=s, overlap=o, k=1, stitch=stitch)
    np_bank = bank.patches.numpy().reshape(-1, 3, s, s)
    for i in range(x.shape[0]):
        want = np_quilt(x[i].numpy(), np_bank, s, o, stitch)
        assert not np.isnan(want).any()
        np.testing.assert_array_equal(y[i].numpy(), want)


def test_min_cut_differs_from_overwrite_and_lowers_seam_error() -> None:
    x = _smooth_images(2, 32, 32, seed=8)
    bank = PatchBank.from_images(_smooth_images(8, 32, 32, seed=9), 5, stride=2)
    cut = quilt(x, bank, k=1, stitch="min-cut")
    over = quilt(x, bank, k=1, stitch="overwrite")
    assert not torch.equal(cut, over)

    def jump(y: torch.Tensor) -> float:  # mean squared neighbour difference
        return float((y.diff(dim=-1) ** 2).mean() + (y.diff(dim=-2) ** 2).mean())

    assert jump(cut) < jump(over)


def test_randomness_from_generator_only() -> None:
    x = _smooth_images(2, 33, 29, seed=10)
    bank = PatchBank.from_images(_smooth_images(6, 24, 24, seed=11), 5, stride=1)
    d = Quilting(bank, k=5)
    assert d.stochastic and not d.differentiable
    a = d(x, generator=_gen(0))
    b = d(x, generator=_gen(0))
    c = d(x, generator=_gen(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    # every output pixel is a bank pixel (quilting copies, never blends)
    values = torch.unique(bank.patches)
    assert torch.isin(a, values).all()
    # K = 1 is deterministic without a generator
    d1 = Quilting(bank, k=1)
    assert torch.equal(d1(x), d1(x))
    # identity surrogate for BPDA
    assert isinstance(d, Defense) and d.surrogate(x) is x


def test_bad_parameters() -> None:
    bank = PatchBank.from_images(_smooth_images(1, 10, 10, seed=12), 5)
    for kwargs in (
        {"patch_size": 1},
        {"k": 0},
        {"overlap": 5},
        {"overlap": -1},
        {"stitch": "blend"},
        {"block_elements": 0},
        {"search": "approx"},
    ):
        with pytest.raises(InputError):
            Quilting(bank, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="patch_size"):
        Quilting(bank, patch_size=3)
    with pytest.raises(InputError, match="empty"):
        PatchBank(torch.empty(0, 75), 5)
    with pytest.raises(InputError):
        PatchBank(torch.full((4, 75), 2.0), 5)
    with pytest.raises(InputError):
        PatchBank(torch.rand(4, 74), 5)
    x = torch.rand(1, 3, 12, 12)
    with pytest.raises(InputError):
        quilt(x, torch.rand(4, 48), patch_size=5)
    with pytest.raises(InputError, match="empty"):
        quilt(x, torch.empty(0, 75))
    with pytest.raises(ShapeError):
        quilt(torch.rand(1, 3, 4, 12), bank)
    with pytest.raises(ShapeError):
        quilt(torch.rand(3, 12, 12), bank)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:  # pragma: no cover - CPU machines skip
    x = _smooth_images(2, 33, 29, seed=13)
    bank = PatchBank.from_images(_smooth_images(4, 24, 24, seed=14), 5, stride=1)
    d = Quilting(bank, k=3)
    y_cpu = d(x, generator=_gen(0))
    y_gpu = d.to("cuda")(x.cuda(), generator=_gen(0))
    assert y_gpu.device.type == "cuda"
    torch.testing.assert_close(y_gpu.cpu(), y_cpu)
