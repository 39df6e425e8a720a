"""Wavelet denoising (vs scikit-image / PyWavelets) and Pixel Deflection."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import pywt
import scipy.stats
import torch
from skimage import color as skcolor
from skimage.restoration import denoise_wavelet as sk_denoise_wavelet
from skimage.restoration import estimate_sigma as sk_estimate_sigma

from advsr.defenses.deflection import PixelDeflection, deflect, draw_deflections
from advsr.defenses.wavelet import (
    _MAD_NORMAL,
    YCBCR_FROM_RGB,
    WaveletDenoise,
    denoise_wavelet,
    dwt_max_level,
    estimate_sigma,
    wavedec2,
    waverec2,
)
from advsr.errors import InputError, ShapeError
from advsr.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb

TOL = 1e-4  # max abs difference allowed against skimage (observed: ~1e-14 f64, ~4e-6 f32)
SIZES = [(32, 32), (33, 29), (64, 48)]
WAVELETS = ["db1", "db2", "sym4"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour patterns + Gaussian noise (sigma 0.05), clipped: ``(n, h, w, 3)``."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for i in range(n):
        base = np.stack(
            [0.5 + 0.4 * np.sin(6 * xx + i + c) * np.cos(4 * yy - c) for c in range(3)], -1
        )
        out.append(np.clip(base + 0.05 * g.standard_normal((h, w, 3)), 0, 1))
    return np.stack(out)


def _skimage(x: np.ndarray, **kw) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([sk_denoise_wavelet(im, channel_axis=-1, **kw) for im in x])


def _ours(x: np.ndarray, **kw) -> np.ndarray:
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    return denoise_wavelet(t, **kw).permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------- DWT vs pywt


@pytest.mark.parametrize("wavelet", ["db1", "db2", "sym4", "coif1", "bior2.2"])
@pytest.mark.parametrize("shape", [(32, 32), (33, 29), (7, 5), (2, 9)])
@pytest.mark.parametrize("level", [1, 3])
def test_wavedec2_matches_pywt(wavelet, shape, level):
    x = np.random.default_rng(1).random((2, *shape))
    with warnings.catch_warnings():  # level above the max level: pywt warns, still defined
        warnings.simplefilter("ignore")
        ref = pywt.wavedec2(x, wavelet, mode="symmetric", level=level)
        ref_rec = pywt.waverec2(ref, wavelet, mode="symmetric")
    ours = wavedec2(torch.from_numpy(x), wavelet, level)
    assert len(ours) == len(ref) == level + 1
    np.testing.assert_allclose(ours[0].numpy(), ref[0], rtol=0, atol=1e-12)
    for r, o in zip(ref[1:], ours[1:], strict=True):
        for rr, oo in zip(r, o, strict=True):
            assert tuple(oo.shape) == rr.shape
            np.testing.assert_allclose(oo.numpy(), rr, rtol=0, atol=1e-12)
    rec = waverec2(ours, wavelet)
    assert tuple(rec.shape) == ref_rec.shape
    np.testing.assert_allclose(rec.numpy(), ref_rec, rtol=0, atol=1e-12)
    # perfect reconstruction after cropping (orthogonal and biorthogonal banks)
    np.testing.assert_allclose(rec[..., : shape[0], : shape[1]].numpy(), x, atol=1e-10)


def test_wavedec2_default_level_and_float32():
    x = np.random.default_rng(2).random((40, 27)).astype(np.float32)
    ref = pywt.wavedec2(x, "db2", mode="symmetric")
    ours = wavedec2(torch.from_numpy(x), "db2")
    assert len(ours) == len(ref)
    assert ours[0].dtype == torch.float32
    np.testing.assert_allclose(ours[0].numpy(), ref[0], atol=1e-5)
    np.testing.assert_allclose(ours[-1][2].numpy(), ref[-1][2], atol=1e-5)


def test_dwt_max_level_matches_pywt():
    for n, f in itertools.product(range(1, 300), [2, 4, 6, 8, 16, 62]):
        assert dwt_max_level(n, f) == pywt.dwt_max_level(n, f), (n, f)


def test_haar_exact_zeros_like_pywt():
    """Mirrored boundary samples give exact-zero Haar details (the median masks them)."""
    x = np.random.default_rng(3).random((33, 29)).astype(np.float32)
    ref = pywt.wavedecn(x, "db1", level=1)[1]["dd"]
    ours = wavedec2(torch.from_numpy(x), "db1", 1)[1][2].numpy()
    assert (ref == 0).sum() > 0
    np.testing.assert_array_equal(ours == 0, ref == 0)


# --------------------------------------------------------------------------- denoise vs skimage


def test_ycbcr_conventions_match_skimage():
    """advsr.imaging.color is skimage's rgb2ycbcr / 255 (the matrix is the same)."""
    rgb = np.random.default_rng(4).random((5, 6, 3))
    t = torch.from_numpy(rgb).permute(2, 0, 1)
    ours = rgb_to_ycbcr(t).permute(1, 2, 0).numpy() * 255
    np.testing.assert_allclose(ours, skcolor.rgb2ycbcr(rgb), atol=1e-10)
    back = ycbcr_to_rgb(rgb_to_ycbcr(t)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, skcolor.ycbcr2rgb(skcolor.rgb2ycbcr(rgb)), atol=1e-10)
    np.testing.assert_array_equal(np.array(YCBCR_FROM_RGB), skcolor.colorconv.ycbcr_from_rgb)
    assert abs(_MAD_NORMAL - scipy.stats.norm.ppf(0.75)) <= 1e-15


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("method", ["BayesShrink", "VisuShrink"])
@pytest.mark.parametrize("mode", ["soft", "hard"])
@pytest.mark.parametrize("convert2ycbcr", [False, True])
@pytest.mark.parametrize("sigma", [None, 0.04])
def test_denoise_matches_skimage_float64(size, wavelet, method, mode, convert2ycbcr, sigma):
    x = _images(2, *size, seed=5)
    kw = dict(sigma=sigma, wavelet=wavelet, mode=mode, convert2ycbcr=convert2ycbcr, method=method)
    ref = _skimage(x, **kw)
    ours = _ours(x, **kw)
    assert ours.dtype == np.float64
    assert np.abs(ref - x).max() > 1e-2  # the comparison is not between two identities
    assert np.abs(ours - ref).max() <= TOL


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("convert2ycbcr", [False, True])
@pytest.mark.parametrize("sigma", [None, 0.04])
def test_denoise_matches_skimage_float32(size, wavelet, convert2ycbcr, sigma):
    x = _images(2, *size, seed=6).astype(np.float32)
    for method, mode in itertools.product(["BayesShrink", "VisuShrink"], ["soft", "hard"]):
        kw = dict(
            sigma=sigma, wavelet=wavelet, mode=mode, convert2ycbcr=convert2ycbcr, method=method
        )
        ref = _skimage(x, **kw)
        ours = _ours(x, **kw)
        assert ours.dtype == np.float32
        assert np.abs(ours - ref).max() <= TOL, kw


@pytest.mark.parametrize("sigma", [0.02, 0.1])
@pytest.mark.parametrize("levels", [1, 2, 5])
def test_denoise_rescale_sigma_and_levels(sigma, levels):
    x = _images(2, 33, 29, seed=7)
    for rescale in (True, False):
        kw = dict(sigma=sigma, wavelet="db2", convert2ycbcr=True, rescale_sigma=rescale)
        ref = _skimage(x, wavelet_levels=levels, **kw)
        assert np.abs(_ours(x, wavelet_levels=levels, **kw) - ref).max() <= TOL


def test_sigma_estimate_masks_exact_zeros():
    """Left half constant: its finest Haar details are exactly 0 and excluded from the MAD."""
    x = _images(2, 32, 32, seed=8)
    x[:, :, :16] = 0.5
    for ycc in (False, True):
        ref = _skimage(x, sigma=None, convert2ycbcr=ycc)
        assert np.abs(_ours(x, sigma=None, convert2ycbcr=ycc) - ref).max() <= TOL
    # against skimage's estimate_sigma (db2, one level, per channel)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    ours = estimate_sigma(t).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([sk_estimate_sigma(im, channel_axis=-1) for im in x])
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_legacy_ycbcr_sigma_matches_old_skimage():
    """skimage < 0.16: sigma applied as is to each min-max normalised YCbCr channel."""
    x = _images(2, 33, 29, seed=9)
    ref = np.empty_like(x)
    for i, im in enumerate(x):
        ycc = skcolor.rgb2ycbcr(im)
        for c in range(3):
            lo, hi = ycc[..., c].min(), ycc[..., c].max()
            ch = (ycc[..., c] - lo) / (hi - lo)
            den = sk_denoise_wavelet(ch, sigma=0.04, method="BayesShrink", mode="soft")
            ycc[..., c] = den * (hi - lo) + lo
        ref[i] = skcolor.ycbcr2rgb(ycc)
    ours = _ours(x, sigma=0.04, convert2ycbcr=True, legacy_ycbcr_sigma=True)
    assert np.abs(ours - ref).max() <= TOL
    modern = _ours(x, sigma=0.04, convert2ycbcr=True)
    assert np.abs(modern - ref).max() > 1e-3  # the two conventions differ


@pytest.mark.parametrize("size", [224, 299])
def test_paper_preset_on_a_photo_matches_old_skimage(size):
    """Issue 25: at the classifier's view size (natural photo, 224 / 299 px) the defense's
    preset is skimage's call of the reference code (levels 4 / 5 by skimage's rule, db1,
    legacy sigma), i.e. wavelet + SR losing clean accuracy is not a port defect."""
    from advsr.data.imagenet import resize_center_crop
    from advsr.data.samples import sample_paths
    from advsr.io import read_image

    photo = resize_center_crop(read_image(sample_paths()["astronaut"]), size).double()
    im = photo[0].permute(1, 2, 0).numpy()
    ycc = skcolor.rgb2ycbcr(im)
    for c in range(3):
        lo, hi = ycc[..., c].min(), ycc[..., c].max()
        ch = (ycc[..., c] - lo) / (hi - lo)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            den = sk_denoise_wavelet(ch, sigma=0.04, method="BayesShrink", mode="soft")
        ycc[..., c] = den * (hi - lo) + lo
    ref = np.clip(skcolor.ycbcr2rgb(ycc), 0, 1)  # skimage < 0.16 clipped its output
    ours = WaveletDenoise()(photo)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref).max() <= TOL
    assert max(dwt_max_level(size, 2) - 3, 1) == (4 if size == 224 else 5)
    assert np.abs(ref - im).max() > 0.05  # it does smooth the photo


def test_constant_channel_is_left_alone():
    x = _images(2, 32, 32, seed=10)
    x[0] = 0.3  # a grey image: Cb and Cr constant (skimage skips them), Y constant too
    ref = _skimage(x, sigma=0.04, convert2ycbcr=True)
    ours = _ours(x, sigma=0.04, convert2ycbcr=True)
    assert np.isfinite(ours).all()
    assert np.abs(ours - ref).max() <= TOL
    np.testing.assert_allclose(ours[0], x[0], atol=1e-12)


def test_sigma_zero_and_all_zero_details_are_finite():
    x = torch.full((1, 3, 16, 16), 0.25, dtype=torch.float64)
    for ycc in (False, True):
        out = denoise_wavelet(x, sigma=None, convert2ycbcr=ycc)
        torch.testing.assert_close(out, x)
    y = torch.from_numpy(_images(1, 16, 16)).permute(0, 3, 1, 2)
    torch.testing.assert_close(denoise_wavelet(y, sigma=0.0), y)  # threshold 0: identity


# --------------------------------------------------------------------------- module


def test_module_presets_and_clamp():
    x = torch.from_numpy(_images(2, 33, 29, seed=11)).permute(0, 3, 1, 2).float()
    d = WaveletDenoise()
    assert d.differentiable and not d.stochastic
    y = d(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    raw = denoise_wavelet(
        x, sigma=0.04, convert2ycbcr=True, legacy_ycbcr_sigma=True, method="BayesShrink"
    )
    torch.testing.assert_close(y, raw.clamp(0, 1))
    assert torch.equal(d(x), y)  # deterministic


def test_gradient_finite_through_module():
    x = torch.from_numpy(_images(2, 24, 20, seed=12)).permute(0, 3, 1, 2).requires_grad_()
    for d in (WaveletDenoise(), WaveletDenoise(sigma=None, convert2ycbcr=False, mode="hard")):
        (g,) = torch.autograd.grad((d(x) * torch.linspace(0, 1, 20)).sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_gradcheck_soft_bayes():
    x = torch.from_numpy(_images(1, 9, 8, seed=13)).permute(0, 3, 1, 2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: denoise_wavelet(t, sigma=0.04, wavelet="db2"), (x,), eps=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"wavelet": "nope"},
        {"wavelet": "morl"},  # continuous
        {"mode": "garrote"},
        {"method": "SureShrink"},
        {"sigma": -0.1},
        {"sigma": float("nan")},
        {"wavelet_levels": 0},
        {"wavelet_levels": 1.5},
    ],
)
def test_bad_parameters_raise(kw):
    with pytest.raises(InputError):
        WaveletDenoise(**kw)
    with pytest.raises(InputError):
        denoise_wavelet(torch.rand(1, 3, 8, 8), **kw)


def test_bad_tensors_raise():
    with pytest.raises(ShapeError):
        WaveletDenoise()(torch.rand(3, 8, 8))
    with pytest.raises(ShapeError):
        denoise_wavelet(torch.rand(1, 2, 8, 8), convert2ycbcr=True)
    with pytest.raises(ShapeError):
        denoise_wavelet(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# --------------------------------------------------------------------------- pixel deflection


def _numpy_deflect(x: np.ndarray, targets: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """The reference's sequential loop, one image and one deflection at a time."""
    out = x.reshape(x.shape[0], -1).copy()
    for i in range(out.shape[0]):
        for t, s in zip(targets[i], sources[i], strict=True):
            out[i, t] = out[i, s]
    return out.reshape(x.shape)


def test_draws_stay_in_window_and_cycle_channels():
    n, h, w, d, win = 4, 30, 25, 3000, 3
    t, s = draw_deflections(n, (h, w), d, win, torch.Generator().manual_seed(0))
    assert t.shape == s.shape == (n, d) and t.dtype == torch.int64
    ct, rt, wt = t // (h * w), (t % (h * w)) // w, t % w
    cs, rs, ws = s // (h * w), (s % (h * w)) // w, s % w
    assert torch.equal(ct, cs) and torch.equal(ct[0], torch.arange(d) % 3)
    dr, dc = rs - rt, ws - wt
    assert dr.abs().max() == win and dc.abs().max() == win  # the full window is reachable
    assert ((rs >= 0) & (rs < h) & (ws >= 0) & (ws < w)).all()
    assert rt.min() == 0 and rt.max() == h - 1 and wt.min() == 0 and wt.max() == w - 1
    # interior targets: offsets uniform over the 2 win + 1 values on each axis
    inner = (rt >= win) & (rt < h - win)
    counts = torch.bincount((dr[inner] + win).flatten(), minlength=2 * win + 1).numpy()
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


def test_deflect_matches_sequential_reference_and_counts():
    n, h, w, d = 3, 12, 10, 40
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t, s = draw_deflections(n, (h, w), d, 2, torch.Generator().manual_seed(2))
    before = x.clone()
    out = deflect(x, t, s)
    assert torch.equal(x, before)  # the input is not modified in place
    np.testing.assert_array_equal(out.numpy(), _numpy_deflect(x.numpy(), t.numpy(), s.numpy()))
    changed = (out != x).flatten(1).sum(1)
    assert (changed <= d).all() and (changed > 0).all()


def test_deflected_values_come_from_the_window():
    """All values distinct; with few deflections each changed value is an original value of
    the same channel at most ``window`` pixels away on each axis."""
    n, h, w, d, win = 2, 64, 64, 20, 4
    x = torch.randperm(n * 3 * h * w, generator=torch.Generator().manual_seed(3))
    x = x.reshape(n, 3, h, w).double() / (n * 3 * h * w)
    out = deflect(x, *draw_deflections(n, (h, w), d, win, torch.Generator().manual_seed(4)))
    idx = (out != x).nonzero()
    assert len(idx) > 0
    for i, c, r, col in idx.tolist():
        pos = (x[i, c] == out[i, c, r, col]).nonzero()
        assert len(pos) == 1
        pr, pc = pos[0].tolist()
        assert abs(pr - r) <= win and abs(pc - col) <= win


def test_pixel_deflection_seeded_and_range():
    x = torch.from_numpy(_images(2, 40, 36, seed=14)).permute(0, 3, 1, 2).float()
    pd = PixelDeflection()
    assert pd.stochastic and not pd.differentiable
    assert torch.equal(pd.surrogate(x), x)
    y1 = pd(x, torch.Generator().manual_seed(5))
    y2 = pd(x, torch.Generator().manual_seed(5))
    y3 = pd(x, torch.Generator().manual_seed(6))
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)
    assert y1.shape == x.shape and float(y1.min()) >= 0 and float(y1.max()) <= 1
    # the defense = deflection then the paper's wavelet preset
    t, s = draw_deflections(2, (40, 36), 200, 10, torch.Generator().manual_seed(5))
    torch.testing.assert_close(y1, WaveletDenoise()(deflect(x, t, s)))
    raw = PixelDeflection(denoise=False)(x, torch.Generator().manual_seed(5))
    assert torch.equal(raw, deflect(x, t, s))


@pytest.mark.parametrize(
    "kw", [{"deflections": 0}, {"window": 0}, {"window": 2.5}, {"sigma": -1.0}]
)
def test_pixel_deflection_bad_parameters(kw):
    with pytest.raises(InputError):
        PixelDeflection(**kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.from_numpy(_images(2, 33, 29, seed=15)).permute(0, 3, 1, 2)
    for d in (WaveletDenoise(), WaveletDenoise(sigma=None, wavelet="sym4", mode="hard")):
        torch.testing.assert_close(d(x.cuda()).cpu(), d(x), rtol=0, atol=1e-10)
    pd = PixelDeflection()
    y_gpu = pd(x.cuda(), torch.Generator().manual_seed(7)).cpu()
    torch.testing.assert_close(y_gpu, pd(x, torch.Generator().manual_seed(7)), rtol=0, atol=1e-10)
