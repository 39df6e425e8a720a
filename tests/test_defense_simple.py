"""Median smoothing, bit depth, K-means and JPEG defenses against scipy/numpy/sklearn/PIL."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import skimage.transform
import torch
from PIL import Image
from sklearn.cluster import KMeans

from advsr.defenses.base import Defense
from advsr.defenses.filters import MedianSmoothing, median_filter, symmetric_pad
from advsr.defenses.jpeg import JPEGCompression, jpeg_compress, jpeg_surrogate
from advsr.defenses.quantize import (
    BitDepthReduction,
    KMeansQuantization,
    bit_depth,
    bit_reduce,
    kmeans_init,
    kmeans_quantize,
    lloyd,
)
from advsr.errors import InputError, ShapeError

DTYPES = [torch.float32, torch.float64]


def _rand(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _astronaut64() -> torch.Tensor:
    img = skimage.transform.resize(skimage.data.astronaut(), (64, 64), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1)[None].clamp(0, 1)


# ----------------------------------------------------------------------------- median


def _scipy_median(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    ref = [ndi.median_filter(img, size=(1, kh, kw), mode="reflect") for img in x.numpy()]
    return torch.from_numpy(np.stack(ref))


KERNELS = [(1, 3), (3, 1), (3, 3), (5, 5), (2, 2), (4, 4), (2, 3), (1, 2), (6, 5), (1, 1), (7, 7)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_median_equals_scipy(kernel: tuple[int, int], dtype: torch.dtype) -> None:
    kh, kw = kernel
    for seed, (h, w) in enumerate([(9, 13), (2, 3), (1, 1)]):
        x = _rand((2, 3, h, w), seed, dtype)
        assert torch.equal(median_filter(x, kernel), _scipy_median(x, kh, kw))
        ties = torch.round(x * 3) / 3  # many equal values: the selected rank must match
        assert torch.equal(median_filter(ties, kernel), _scipy_median(ties, kh, kw))


@pytest.mark.parametrize("dtype", DTYPES)
def test_median3x3_fast_path_equals_scipy_and_autograd_path(dtype: torch.dtype) -> None:
    x = _rand((3, 3, 31, 40), 7, dtype)
    fast = median_filter(x, (3, 3))
    assert fast.is_contiguous()
    assert torch.equal(fast, _scipy_median(x, 3, 3))
    xg = x.clone().requires_grad_()
    slow = median_filter(xg, 3)  # kthvalue path (autograd recording)
    assert torch.equal(slow.detach(), fast)
    slow.backward(torch.ones_like(slow))
    grad = xg.grad
    assert grad is not None
    # Each output selects exactly one input element: integer counts summing to N*C*H*W.
    assert torch.equal(grad, grad.round()) and float(grad.min()) >= 0
    assert float(grad.sum()) == x.numel()


def test_median_removes_impulse_noise() -> None:
    x = torch.full((1, 3, 16, 16), 0.5)
    noisy = x.clone()
    noisy[0, :, 5, 7] = 1.0
    noisy[0, :, 10, 2] = 0.0
    assert torch.equal(MedianSmoothing(3)(noisy), x)


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (2, 0, 3, 1), (7, 5, 4, 9)])
def test_symmetric_pad_equals_numpy(pads: tuple[int, int, int, int]) -> None:
    x = _rand((1, 3, 3, 4), 3)
    t, b, left, r = pads
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (t, b), (left, r)), mode="symmetric")
    assert torch.equal(symmetric_pad(x, t, b, left, r), torch.from_numpy(ref))


@pytest.mark.parametrize("kernel", [0, -1, (3, 0), (2.5, 3), 3.0, (3,), (1, 2, 3), True, "3"])
def test_median_bad_kernel(kernel: object) -> None:
    with pytest.raises(InputError):
        MedianSmoothing(kernel)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        median_filter(torch.rand(1, 3, 4, 4), kernel)  # type: ignore[arg-type]


def test_median_flags_and_shape_error() -> None:
    d = MedianSmoothing((2, 2))
    assert isinstance(d, Defense) and d.differentiable and not d.stochastic
    with pytest.raises(ShapeError):
        d(torch.rand(3, 4, 4))


# ----------------------------------------------------------------------------- bit depth


def _ties(dtype: torch.dtype) -> torch.Tensor:
    """Random values plus every 8-bit level and every half-way point between 4-bit levels."""
    x = _rand((2, 3, 10, 10), 11, dtype).flatten()
    extra = torch.cat([torch.arange(256) / 255, (torch.arange(31) + 0.5) / 30, torch.rand(13)])
    return torch.cat([x, extra.to(dtype)])[: 2 * 3 * 10 * 10].view(2, 3, 10, 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", range(1, 9))
def test_bit_depth_equals_numpy(bits: int, dtype: torch.dtype) -> None:
    x = _ties(dtype)
    xn = x.numpy()
    levels = xn.dtype.type(2**bits - 1)
    ref = np.round(xn * levels) / levels
    out = BitDepthReduction(bits=bits)(x)
    assert out.dtype == dtype
    assert torch.equal(out, torch.from_numpy(ref))
    assert torch.unique(out).numel() <= 2**bits


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", range(8))
def test_bit_reduce_equals_numpy(reduce: int, dtype: torch.dtype) -> None:
    x = _ties(dtype)
    xn = x.numpy()
    v = np.round(xn * xn.dtype.type(255))
    ref = (v - np.mod(v, 2**reduce)) / xn.dtype.type(255)
    out = BitDepthReduction(reduce=reduce)(x)
    assert torch.equal(out, torch.from_numpy(ref))
    codes = torch.round(out * 255).long()
    assert bool((codes % 2**reduce == 0).all())
    assert torch.equal(out, bit_reduce(x, reduce))


def test_bit_depth_known_values() -> None:
    x = torch.tensor([0.0, 0.2, 0.5, 0.75, 1.0], dtype=torch.float64).view(1, 1, 1, 5)
    x = x.expand(1, 3, 1, 5)
    assert bit_depth(x, 1)[0, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # 0.5 -> 0 (even)
    assert bit_depth(x, 2)[0, 0, 0].tolist() == [0.0, 1 / 3, 2 / 3, 2 / 3, 1.0]
    assert (bit_reduce(x, 6)[0, 0, 0] * 255).tolist() == [0.0, 0.0, 128.0, 128.0, 192.0]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"bits": 0}, {"bits": 9}, {"bits": 2.0}, {"bits": True}, {"reduce": 8},
     {"reduce": -1}, {"bits": 4, "reduce": 2}],
)  # fmt: skip
def test_bit_depth_bad_args(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        BitDepthReduction(**kwargs)  # type: ignore[arg-type]


def test_bit_depth_flags() -> None:
    d = BitDepthReduction(bits=3)
    x = torch.rand(1, 3, 4, 4)
    assert not d.differentiable and not d.stochastic
    assert d.surrogate(x) is x


# ----------------------------------------------------------------------------- k-means


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("iterations", [1, 3, 100])
def test_lloyd_equals_sklearn(init: str, iterations: int, dtype: torch.dtype) -> None:
    k = 5
    g = torch.Generator().manual_seed(iterations + len(init))
    x = torch.rand(3, 3, 12, 12, generator=g, dtype=dtype)
    points = x.flatten(2).transpose(1, 2)
    start = kmeans_init(points, k, g, init)  # type: ignore[arg-type]
    centres, labels = lloyd(points, start, iterations, tol=0.0)
    for i in range(x.shape[0]):
        km = KMeans(
            n_clusters=k,
            init=start[i].numpy(),
            n_init=1,
            algorithm="lloyd",
            max_iter=iterations,
            tol=0.0,
        ).fit(points[i].numpy())
        assert np.abs(km.cluster_centers_ - centres[i].numpy()).max() < 1e-5
        assert np.array_equal(km.labels_, labels[i].numpy())
        assert len(np.unique(km.labels_)) == k  # no empty cluster: the conventions agree


def test_lloyd_tolerance() -> None:
    points = _rand((3, 3, 10, 10), 4).flatten(2).transpose(1, 2)
    start = kmeans_init(points, 4, torch.Generator().manual_seed(3))
    one, _ = lloyd(points, start, 1, tol=0.0)
    assert torch.equal(lloyd(points, start, 50, tol=10.0)[0], one)  # stops after one step
    fixed, labels = lloyd(points, start, 200, tol=0.0)
    assert not torch.equal(fixed, one)
    assert torch.equal(lloyd(points, fixed, 1, tol=0.0)[0], fixed)  # a fixed point
    assert torch.equal(lloyd(points, fixed, 0)[1], labels)
    # A step moving the centres by 0 < shift <= tol stops; the same run with tol=0 goes on.
    two, _ = lloyd(points, start, 2, tol=0.0)
    shift = float((two - one).square().sum(dim=(1, 2)).max())
    assert shift > 0
    assert torch.equal(lloyd(points, start, 50, tol=shift)[0], two)


def test_kmeans_plusplus_picks_distinct_pixels() -> None:
    x = _rand((4, 3, 10, 10), 5)
    points = x.flatten(2).transpose(1, 2)
    centres = kmeans_init(points, 8, torch.Generator().manual_seed(0))
    for pts, cen in zip(points, centres, strict=True):
        assert all(bool((pts == c).all(dim=1).any()) for c in cen)  # centres are pixels
        assert torch.unique(cen, dim=0).shape[0] == 8  # D^2 sampling never repeats one


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_kmeans_quantize_output(init: str) -> None:
    x = _rand((3, 3, 16, 16), 9, torch.float32)
    d = KMeansQuantization(k=6, init=init)  # type: ignore[arg-type]
    out = d(x, torch.Generator().manual_seed(1))
    again = d(x, torch.Generator().manual_seed(1))
    other = d(x, torch.Generator().manual_seed(2))
    assert torch.equal(out, again)
    assert not torch.equal(out, other)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    for img, src in zip(out, x, strict=True):
        colours = torch.unique(img.flatten(1), dim=1).T
        assert colours.shape[0] == 6
        # Every pixel holds the mean of the pixels that carry its colour (Lloyd fixed point
        # up to the iteration budget: at most one step away, so compare loosely).
        flat, orig = img.flatten(1).T, src.flatten(1).T
        for c in colours:
            members = (flat == c).all(dim=1)
            assert (orig[members].mean(0) - c).abs().max() < 0.05
    # The error of k-means is far below that of the random initial centres alone.
    g = torch.Generator().manual_seed(1)
    init_only = kmeans_quantize(x, 6, iterations=0, init=init, generator=g)  # type: ignore[arg-type]
    assert (out - x).square().mean() < (init_only - x).square().mean()


def test_kmeans_few_colours_is_exact() -> None:
    x = torch.zeros(2, 3, 6, 6)
    x[:, 0, :3] = 1.0  # two colours only, k = 4: duplicate centres, empty clusters
    out = kmeans_quantize(x, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 1}, {"k": 0}, {"k": 2.5}, {"k": 4, "init": "foo"}, {"k": 4, "iterations": -1},
     {"k": 4, "tol": -1.0}, {"k": 4, "tol": float("nan")}],
)  # fmt: skip
def test_kmeans_bad_args(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        KMeansQuantization(**kwargs)  # type: ignore[arg-type]


def test_kmeans_flags_and_too_many_colours() -> None:
    d = KMeansQuantization(k=17)
    assert d.stochastic and not d.differentiable
    with pytest.raises(InputError):
        d(torch.rand(1, 3, 4, 4), torch.Generator())


# ----------------------------------------------------------------------------- JPEG

_PIL_SUB = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _pil_jpeg(x: torch.Tensor, quality: int, subsampling: str) -> torch.Tensor:
    out = []
    for img in x.numpy():
        codes = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        buf = io.BytesIO()
        Image.fromarray(codes).save(buf, "JPEG", quality=quality, subsampling=_PIL_SUB[subsampling])
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        out.append(dec.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("quality", [1, 10, 50, 75, 95, 100])
@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
def test_jpeg_equals_pil(quality: int, subsampling: str, dtype: torch.dtype) -> None:
    x = _rand((2, 3, 17, 23), quality, dtype)
    out = JPEGCompression(quality, subsampling)(x)  # type: ignore[arg-type]
    assert out.dtype == dtype and out.shape == x.shape
    ref = _pil_jpeg(x, quality, subsampling)
    assert torch.equal(torch.round(out * 255).to(torch.uint8), ref)
    assert torch.equal(out, ref.to(dtype) / 255)


def test_jpeg_default_is_420() -> None:
    x = _astronaut64()
    assert torch.equal(jpeg_compress(x, 75), jpeg_compress(x, 75, "4:2:0"))
    assert not torch.equal(jpeg_compress(x, 75), jpeg_compress(x, 75, "4:4:4"))
    assert JPEGCompression().subsampling == "4:2:0" and JPEGCompression().quality == 75


def test_jpeg_surrogate_close_and_differentiable() -> None:
    x = _astronaut64()
    d = JPEGCompression(75)
    real = d(x)
    sur = d.surrogate(x)
    err = float((sur - real).abs().mean())
    assert err < 0.015  # measured 0.0067 (identity: 0.026)
    assert err < 0.5 * float((x - real).abs().mean())
    xg = x.clone().requires_grad_()
    jpeg_surrogate(xg, 75).square().sum().backward()
    assert xg.grad is not None
    assert bool(torch.isfinite(xg.grad).all()) and float(xg.grad.abs().mean()) > 0.01


@pytest.mark.parametrize(
    "kwargs",
    [{"quality": 0}, {"quality": 101}, {"quality": 75.0}, {"quality": True},
     {"subsampling": "4:1:1"}, {"subsampling": 2}],
)  # fmt: skip
def test_jpeg_bad_args(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        JPEGCompression(**kwargs)  # type: ignore[arg-type]


def test_jpeg_flags() -> None:
    d = JPEGCompression(30)
    assert not d.differentiable and not d.stochastic
