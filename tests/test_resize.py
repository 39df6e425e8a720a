"""imresize against the numpy port of BasicSR / MATLAB and against MATLAB-made Set5 LR files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advsr.errors import InputError, ShapeError
from advsr.imaging import Imresize, imresize, modcrop, quantize
from advsr.io import read_image
from tests.conftest import SET5, needs_shared
from tests.references.basicsr_numpy import imresize_np


def _np(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize(
    ("h", "w", "scale"),
    [(24, 36, 0.5), (24, 36, 0.25), (17, 23, 1 / 3), (12, 10, 2.0), (9, 13, 4.0), (20, 20, 3.0)],
)
def test_matches_basicsr_port(h: int, w: int, scale: float) -> None:
    g = torch.Generator().manual_seed(int(h * 100 + w + scale * 7))
    x = torch.rand(1, 3, h, w, generator=g)
    ref = imresize_np(_np(x), scale)
    got = imresize(x, scale)
    assert got.shape[-2:] == ref.shape[:2]
    assert np.abs(_np(got) - ref).max() < 1e-5
    got64 = imresize(x.double(), scale)
    assert np.abs(_np(got64) - ref).max() < 1e-12


def test_no_antialias_matches_port() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = imresize_np(_np(x), 0.5, antialias=False)
    assert np.abs(_np(imresize(x, 0.5, antialias=False)) - ref).max() < 1e-5


def test_differs_from_torch_bicubic() -> None:
    """The a=-0.5 antialiased kernel is not torch's a=-0.75 bicubic: a test that can fail."""
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.nn.functional.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False)
    assert (imresize(x, 0.5) - t).abs().max() > 1e-2


def test_batched_equals_single_and_constant_preserved() -> None:
    x = torch.rand(4, 3, 20, 28, generator=torch.Generator().manual_seed(3))
    batch = imresize(x, 0.5)
    for i in range(4):
        assert torch.allclose(batch[i : i + 1], imresize(x[i : i + 1], 0.5), atol=1e-7)
    c = torch.full((2, 3, 15, 9), 0.3)
    assert torch.allclose(imresize(c, 2.0), torch.full((2, 3, 30, 18), 0.3), atol=1e-6)


def test_size_argument_and_module() -> None:
    x = torch.rand(2, 1, 40, 30)
    assert imresize(x, size=(20, 60)).shape == (2, 1, 20, 60)
    assert torch.equal(Imresize(0.5)(x), imresize(x, 0.5))


def test_gradient_flows_and_is_linear() -> None:
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.5), (x,))


def test_bad_input() -> None:
    with pytest.raises(ShapeError):
        imresize(torch.rand(3, 8, 8), 0.5)
    with pytest.raises(ShapeError):
        imresize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(InputError):
        imresize(torch.rand(1, 3, 8, 8), 0.0)
    with pytest.raises(InputError):
        imresize(torch.rand(1, 3, 8, 8), -2.0)
    with pytest.raises(InputError):
        imresize(torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError):
        imresize(torch.rand(1, 3, 8, 8), 0.5, kernel="cubical")  # type: ignore[arg-type]


def test_modcrop() -> None:
    x = torch.rand(1, 3, 11, 14)
    assert modcrop(x, 4).shape == (1, 3, 8, 12)
    assert torch.equal(modcrop(x, 4), x[..., :8, :12])
    with pytest.raises(ShapeError):
        modcrop(torch.rand(1, 3, 3, 10), 4)
    with pytest.raises(InputError):
        modcrop(x, 0)


@needs_shared
@pytest.mark.parametrize("scale", [2, 4])
def test_matches_matlab_lr_files(scale: int) -> None:
    """Our downscale of each Set5 HR, rounded to 8 bits, equals MATLAB's LR within 1 level."""
    for hr_path in sorted((SET5 / f"image_SRF_{scale}").glob("*_HR.png")):
        hr = read_image(hr_path)
        lr = read_image(hr_path.with_name(hr_path.name.replace("_HR", "_LR")))
        ours = quantize(imresize(hr, 1 / scale))
        diff = ((ours - lr).abs() * 255).round()
        assert (diff <= 1).double().mean() >= 0.99, hr_path.name
