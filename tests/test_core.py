"""Registry, checks, budget, device selection, bicubic model."""

from __future__ import annotations

import pytest
import torch

from advsr.checks import check_image, check_non_negative, check_scale
from advsr.devices import resolve_device
from advsr.errors import AdvsrError, InputError, ShapeError, UnknownNameError
from advsr.imaging import imresize
from advsr.models.sr import SR_MODELS, create_sr_model, list_sr_models
from advsr.registry import Registry
from advsr.types import Budget


def test_registry() -> None:
    r: Registry[int] = Registry("thing")
    r.register("Alpha", 1, "first")
    assert r.get("alpha") == 1 and "ALPHA" in r and r.names() == ["alpha"] and len(r) == 1
    assert r.help("alpha") == "first"
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        r.get("alhpa")
    with pytest.raises(InputError):
        r.register("alpha", 2)
    err = UnknownNameError("unknown thing 'x'")
    assert str(err) == "unknown thing 'x'" and isinstance(err, AdvsrError)


def test_checks() -> None:
    x = torch.rand(2, 3, 4, 4)
    assert check_image(x) is x
    for bad in (
        torch.rand(3, 4, 4),
        torch.rand(1, 1, 4, 4),
        torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
        torch.rand(0, 3, 4, 4),
        [1, 2],
    ):
        with pytest.raises(ShapeError):
            check_image(bad)
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        check_image(x + 1, check_range=True)
    for bad_scale in (0, -2, 2.5, True):
        with pytest.raises(InputError):
            check_scale(bad_scale)
    with pytest.raises(InputError):
        check_non_negative(-0.1, "eps")
    with pytest.raises(InputError):
        check_non_negative(float("nan"), "eps")


def test_budget() -> None:
    b = Budget("linf", 0.05, steps=50)
    assert b.step_size == pytest.approx(0.001)
    assert Budget("l2", 1.0, 10, step_size=0.2).step_size == 0.2
    with pytest.raises(InputError, match="eps"):
        Budget("linf", -0.1)
    with pytest.raises(InputError, match="norm"):
        Budget("l1", 0.1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="steps"):
        Budget("linf", 0.1, steps=0)


def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InputError):
        resolve_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_bicubic_model() -> None:
    m = create_sr_model("bicubic", 4)
    x = torch.rand(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    y = m(x)
    assert y.shape == (2, 3, 32, 24) and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, imresize(x, 4.0).clamp(0, 1))
    assert not m.training
    assert list_sr_models()[0]["params"] == 0 and "bicubic" in SR_MODELS
    with pytest.raises(UnknownNameError):
        create_sr_model("bicubik", 2)
    with pytest.raises(InputError, match="does not support scale 5"):
        create_sr_model("bicubic", 5)
    with pytest.raises(InputError, match="no parameters"):
        create_sr_model("bicubic", 2, weights="w.safetensors")
    with pytest.raises(ShapeError):
        m(torch.rand(1, 4, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_paths() -> None:  # pragma: no cover - runs on GPU machines
    from advsr.metrics import psnr, ssim

    x = torch.rand(2, 3, 32, 32, device="cuda")
    y = imresize(x, 0.5)
    assert y.device.type == "cuda"
    assert torch.allclose(y.cpu(), imresize(x.cpu(), 0.5), atol=1e-5)
    assert torch.allclose(psnr(y, y * 0.9).cpu(), psnr(y.cpu(), y.cpu() * 0.9), atol=1e-9)
    assert ssim(y, y).device.type == "cuda"


def test_threads_auto_leaves_busy_cpus_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from advsr.devices import auto_threads, set_threads

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    try:
        monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
        assert auto_threads() == 4
        monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
        assert auto_threads() == 1  # 4 CPUs, 3 busy
        monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
        assert set_threads("auto") == 1 and torch.get_num_threads() == 1
        assert set_threads("2") == 2 and torch.get_num_threads() == 2
        for bad in ("0", "-1", "x", "1.5"):
            with pytest.raises(InputError, match="threads"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)
