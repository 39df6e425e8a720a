"""Colour conversion and PSNR/SSIM against skimage and the numpy port of BasicSR."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.color import rgb2ycbcr, ycbcr2rgb
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from advsr.errors import InputError, ShapeError
from advsr.imaging import imresize, quantize, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from advsr.io import read_image
from advsr.metrics import METRICS, fidelity, mse, psnr, ssim, ssim_map
from advsr.metrics.fidelity import Precision
from tests.conftest import SET5, needs_shared
from tests.references.basicsr_numpy import psnr_np, ssim_np


def _pair(seed: int, n: int = 3, h: int = 40, w: int = 36) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    y = (x + 0.1 * torch.randn(n, 3, h, w, generator=g)).clamp(0, 1)
    return x, y


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).double().numpy()


def test_ycbcr_matches_skimage_and_roundtrips() -> None:
    x, _ = _pair(0)
    ours = rgb_to_ycbcr(x.double()) * 255
    for i in range(x.shape[0]):
        ref = rgb2ycbcr(_hwc(x[i]))
        assert np.abs(_hwc(ours[i]) - ref).max() < 1e-9
        back = ycbcr2rgb(ref)
        assert np.abs(_hwc(ycbcr_to_rgb(ours[i : i + 1] / 255)[0]) - back).max() < 1e-9
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)
    assert torch.allclose(rgb_to_y(x), rgb_to_ycbcr(x)[:, :1], atol=1e-6)
    with pytest.raises(ShapeError):
        rgb_to_ycbcr(torch.rand(1, 1, 4, 4))


@pytest.mark.parametrize("y_channel", [False, True])
@pytest.mark.parametrize("border", [0, 3])
def test_psnr_ssim_equal_skimage_and_basicsr(y_channel: bool, border: int) -> None:
    x, y = _pair(10 + border)
    p = psnr(x, y, crop_border=border, y_channel=y_channel)
    s = ssim(x, y, crop_border=border, y_channel=y_channel)
    assert p.shape == s.shape == (3,)
    assert p.dtype == s.dtype == torch.float64
    for i in range(3):
        a, b = _hwc(x[i]), _hwc(y[i])
        assert abs(float(p[i]) - psnr_np(a, b, border, y_channel)) < 1e-6
        assert abs(float(s[i]) - ssim_np(a, b, border, y_channel)) < 1e-5
        # skimage on the same [0, 255] data (Y or RGB), border cropped
        A = rgb2ycbcr(a)[..., :1] if y_channel else a * 255
        B = rgb2ycbcr(b)[..., :1] if y_channel else b * 255
        if border:
            A, B = A[border:-border, border:-border], B[border:-border, border:-border]
        assert abs(float(p[i]) - peak_signal_noise_ratio(B, A, data_range=255)) < 1e-6
        ref = structural_similarity(
            A,
            B,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=2,
        )
        assert abs(float(s[i]) - ref) < 1e-5


def test_identical_images() -> None:
    x, _ = _pair(3)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert (mse(x, x) == 0).all()


@pytest.mark.parametrize(("precision", "tol"), [("float64", 1e-12), ("fast", 1e-6)])
def test_ssim_map_shapes_and_mean(precision: Precision, tol: float) -> None:
    x, y = _pair(4)
    m = ssim_map(x, y, precision=precision)
    assert m.shape == (3, 3, 30, 26)
    assert m.dtype == torch.float64
    assert torch.allclose(m.mean(dim=(1, 2, 3)), ssim(x, y, precision=precision))
    full = ssim_map(x, y, padding="same", precision=precision)
    assert full.shape == (3, 3, 40, 36)
    assert torch.allclose(full[..., 5:-5, 5:-5], m, atol=tol, rtol=0)
    _, ref = structural_similarity(
        _hwc(x[0]) * 255,
        _hwc(y[0]) * 255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
        full=True,
    )
    assert np.abs(_hwc(full[0]) - ref).max() < tol
    assert ssim_map(x, y, y_channel=True, precision=precision).shape == (3, 1, 30, 26)


def test_metrics_are_differentiable() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 14, 13, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(2, 3, 14, 13, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda t: ssim(t, y, y_channel=True, precision="float64"), (x,))
    assert torch.autograd.gradcheck(lambda t: psnr(t, y, crop_border=1), (x,))


def _sk_ssim(a: torch.Tensor, b: torch.Tensor, full: bool = False) -> Any:
    """skimage's SSIM of one ``(C, H, W)`` pair in [0, 1], on the [0, 255] scale."""
    return structural_similarity(
        a.double().numpy() * 255,
        b.double().numpy() * 255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=0,
        full=full,
    )


def _fast_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Image pairs (float64, [0, 1]) on which the fast SSIM path is checked."""
    g = torch.Generator().manual_seed(21)

    def noise(shape: torch.Size, std: float) -> torch.Tensor:
        return std * torch.randn(shape, generator=g, dtype=torch.float64)

    ast = torch.from_numpy(skdata.astronaut()[:256].transpose(2, 0, 1).copy()).double()[None] / 255
    half = torch.zeros(2, 3, 48, 40, dtype=torch.float64)
    half[..., 24:, :] = 1.0
    flat = torch.full((2, 3, 40, 36), 0.8, dtype=torch.float64)
    rx = torch.rand(2, 3, 50, 45, generator=g, dtype=torch.float64)
    return {
        "astronaut_noise": (ast, (ast + noise(ast.shape, 0.02)).clamp(0, 1)),
        "astronaut_quantised": (ast, (ast * 15).round() / 15),
        "random_pair": (rx, torch.rand(rx.shape, generator=g, dtype=torch.float64)),
        "random_noisy": (rx, (rx + noise(rx.shape, 0.05)).clamp(0, 1)),
        "half_black_white": (half, (half + noise(half.shape, 0.002)).clamp(0, 1)),
        "near_constant": (flat + noise(flat.shape, 1e-4), flat + noise(flat.shape, 1e-4)),
        "constant_pair": (flat, flat * 0.99),
    }


# Single map pixels of photographs reach ~8e-5 (float32 second moments in flat areas far
# from the channel mean, see advsr.metrics.fidelity); synthetic images stay below ~6e-7.
_MAP_TOL = {"astronaut_noise": 2e-4, "astronaut_quantised": 2e-4}


@pytest.mark.parametrize("case", list(_fast_cases()))
def test_fast_ssim_matches_skimage_and_float64(case: str) -> None:
    x, y = _fast_cases()[case]
    fast = ssim(x, y)
    ref = ssim(x, y, precision="float64")
    sk = torch.tensor([_sk_ssim(x[i], y[i]) for i in range(x.shape[0])], dtype=torch.float64)
    assert fast.dtype == torch.float64 and fast.shape == (x.shape[0],)
    assert (fast - sk).abs().max() < 1e-6
    assert (fast - ref).abs().max() < 1e-6
    assert (ref - sk).abs().max() < 1e-12
    tol = _MAP_TOL.get(case, 2e-6)
    for padding in ("valid", "same"):
        m = ssim_map(x, y, padding=padding)
        assert (m - ssim_map(x, y, padding=padding, precision="float64")).abs().max() < tol
    _, full = _sk_ssim(x[0], y[0], full=True)
    assert np.abs(ssim_map(x, y, padding="same")[0].numpy() - full).max() < tol


@pytest.mark.parametrize("y_channel", [False, True])
@pytest.mark.parametrize("border", [0, 4])
def test_fast_ssim_options_match_float64(y_channel: bool, border: int) -> None:
    x, y = _fast_cases()["random_noisy"]
    for a, b in ((x, y), (x.float(), y.float()), (x.float(), y)):
        fast = ssim(a, b, y_channel=y_channel, crop_border=border)
        ref = ssim(a, b, y_channel=y_channel, crop_border=border, precision="float64")
        assert (fast - ref).abs().max() < 1e-6
        m = ssim_map(a, b, y_channel=y_channel, crop_border=border, padding="same")
        r = ssim_map(
            a, b, y_channel=y_channel, crop_border=border, padding="same", precision="float64"
        )
        assert m.shape == r.shape and (m - r).abs().max() < 2e-6
    # other windows: smaller windows see smaller local variances, so single pixels carry
    # more float32 cancellation (1.1e-6 at 3x3 here)
    for size, sigma in ((7, 1.0), (11, 2.5), (3, 0.8)):
        for padding in ("valid", "same"):
            kw: dict[str, Any] = {"window_size": size, "sigma": sigma, "padding": padding}
            diff = ssim_map(x, y, **kw) - ssim_map(x, y, precision="float64", **kw)
            assert diff.abs().max() < 1e-5
            assert diff.mean().abs() < 1e-7


def test_fast_ssim_identity_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _fast_cases()["random_noisy"]
    assert (ssim_map(x, x) == 1).all() and (ssim_map(x, x, padding="same") == 1).all()
    assert ssim(x, x).tolist() == [1.0, 1.0]
    whole, whole_map = ssim(x, y), ssim_map(x, y, padding="same")
    monkeypatch.setattr(fidelity, "_CHUNK_CPU", 1)  # one plane per chunk
    assert torch.allclose(ssim(x, y), whole, rtol=0, atol=1e-12)
    assert torch.allclose(ssim_map(x, y, padding="same"), whole_map, rtol=0, atol=1e-6)
    # a batch whose planes are permuted gives the permuted values (chunk order kept)
    perm = torch.tensor([1, 0])
    assert torch.allclose(ssim(x[perm], y[perm]), whole[perm], rtol=0, atol=1e-12)


def test_fast_ssim_slice_filter_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter of non-CPU devices (sums of shifted slices), run here, agrees as well."""
    x, y = _fast_cases()["half_black_white"]
    conv_val, conv_map = ssim(x, y), ssim_map(x, y, padding="same")
    monkeypatch.setattr(fidelity, "_CONV_DEVICES", ())
    val, m = ssim(x, y), ssim_map(x, y, padding="same")
    assert (val - ssim(x, y, precision="float64")).abs().max() < 1e-6
    assert (val - conv_val).abs().max() < 1e-6
    assert (m - ssim_map(x, y, padding="same", precision="float64")).abs().max() < 2e-6
    assert (m - conv_map).abs().max() < 2e-6
    assert (ssim_map(x, x, padding="same") == 1).all()
    for size, sigma in ((7, 1.0), (3, 0.8)):
        kw: dict[str, Any] = {"window_size": size, "sigma": sigma}
        diff = ssim_map(x, y, **kw) - ssim_map(x, y, precision="float64", **kw)
        assert diff.abs().max() < 1e-5


@pytest.mark.parametrize("slices", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_ssim_gradients_match_float64(
    dtype: torch.dtype, slices: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if slices:
        monkeypatch.setattr(fidelity, "_CONV_DEVICES", ())
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 3, 24, 21, generator=g, dtype=torch.float64).to(dtype)
    y = (x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)).clamp(0, 1)
    w = torch.rand(2, 3, 24, 21, generator=g, dtype=torch.float64)
    losses: list[Any] = [
        lambda a, b, p: ssim(a, b, precision=p).sum(),
        lambda a, b, p: ssim(a, b, y_channel=True, crop_border=2, precision=p).sum(),
        lambda a, b, p: (ssim_map(a, b, padding="same", precision=p) * w).sum(),
    ]
    for loss in losses:
        grads = {}
        for p in ("fast", "float64"):
            a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
            grads[p] = torch.autograd.grad(loss(a, b, p), (a, b))
        for gf, gr in zip(grads["fast"], grads["float64"], strict=True):
            assert gf.dtype == dtype
            assert float((gf - gr).norm() / gr.norm()) < 1e-5
            assert float((gf - gr).abs().max()) < 1e-5 * float(gr.abs().max())


def test_metric_errors() -> None:
    x, y = _pair(5)
    with pytest.raises(ShapeError):
        psnr(x, y[:, :, :-1])
    with pytest.raises(InputError):
        psnr(x, y, crop_border=-1)
    with pytest.raises(ShapeError):
        psnr(x, y, crop_border=20)
    with pytest.raises(ShapeError):
        ssim(x[..., :8, :8], y[..., :8, :8])
    with pytest.raises(InputError):
        ssim_map(x, y, padding="full")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ssim(x, y, precision="float16")  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        ssim_map(x[..., :5, :5], y[..., :5, :5], padding="same")
    assert METRICS.get("psnr") is psnr


@needs_shared
def test_real_images_against_references() -> None:
    hr = read_image(SET5 / "image_SRF_4" / "img_002_SRF_4_HR.png")
    lr = read_image(SET5 / "image_SRF_4" / "img_002_SRF_4_LR.png")
    sr = quantize(imresize(lr, 4.0))
    a, b = _hwc(sr[0]), _hwc(hr[0])
    for y_channel in (True, False):
        assert (
            abs(
                float(psnr(sr, hr, crop_border=4, y_channel=y_channel))
                - psnr_np(a, b, 4, y_channel)
            )
            < 1e-6
        )
        assert (
            abs(
                float(ssim(sr, hr, crop_border=4, y_channel=y_channel))
                - ssim_np(a, b, 4, y_channel)
            )
            < 1e-5
        )


@needs_shared
@pytest.mark.parametrize(("scale", "published"), [(2, 33.66), (4, 28.42)])
def test_set5_bicubic_published_psnr(scale: int, published: float) -> None:
    """Bicubic Y-PSNR on Set5 within 0.02 dB of the common tables (8-bit SR output)."""
    vals = []
    for hr_path in sorted((SET5 / f"image_SRF_{scale}").glob("*_HR.png")):
        hr = read_image(hr_path)
        lr = read_image(hr_path.with_name(hr_path.name.replace("_HR", "_LR")))
        sr = quantize(imresize(lr, float(scale)))
        vals.append(float(psnr(sr, hr, crop_border=scale, y_channel=True)))
    assert abs(np.mean(vals) - published) <= 0.02
