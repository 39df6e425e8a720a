"""Colour conversion and PSNR/SSIM against skimage and the numpy port of BasicSR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr, ycbcr2rgb
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from advsr.errors import InputError, ShapeError
from advsr.imaging import imresize, quantize, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from advsr.io import read_image
from advsr.metrics import METRICS, mse, psnr, ssim, ssim_map
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


def test_ssim_map_shapes_and_mean() -> None:
    x, y = _pair(4)
    m = ssim_map(x, y)
    assert m.shape == (3, 3, 30, 26)
    assert torch.allclose(m.mean(dim=(1, 2, 3)), ssim(x, y))
    full = ssim_map(x, y, padding="same")
    assert full.shape == (3, 3, 40, 36)
    assert torch.allclose(full[..., 5:-5, 5:-5], m, atol=1e-12)
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
    assert np.abs(_hwc(full[0]) - ref).max() < 1e-9
    assert ssim_map(x, y, y_channel=True).shape == (3, 1, 30, 26)


def test_metrics_are_differentiable() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 14, 13, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(2, 3, 14, 13, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda t: ssim(t, y, y_channel=True), (x,))
    assert torch.autograd.gradcheck(lambda t: psnr(t, y, crop_border=1), (x,))


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
