"""Backdoor evaluation: metrics against numpy/skimage references, ASR, modes, tables, grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity
from torch import nn

from advsr.backdoor.evaluate import (
    BACKDOOR_HEADER,
    BackdoorEval,
    backdoor_table,
    evaluate_backdoor,
    flat_target_score,
    image_grid,
    rate_curves,
    rate_plots,
)
from advsr.backdoor.poison import RefSRTriplets
from advsr.backdoor.triggers import BadNets, Blend
from advsr.errors import InputError, ShapeError
from advsr.imaging.quantize import quantize
from advsr.imaging.resize import imresize
from advsr.models.refsr import REFSR_MODELS, create_refsr_model
from advsr.report import ReportTable, write_report

HR = 32
SCALE = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> RefSRTriplets:
    root = tmp_path_factory.mktemp("refsr")
    rng = np.random.default_rng(0)
    for sub in ("HR", "Ref"):
        (root / sub).mkdir()
    for i in range(5):
        for sub in ("HR", "Ref"):
            img = rng.integers(0, 250, (40, 44, 3), dtype=np.uint8)  # no pure white pixels
            Image.fromarray(img).save(root / sub / f"{i}.png")
    return RefSRTriplets(root, hr_size=HR, scale=SCALE)


@pytest.fixture(scope="module")
def target() -> torch.Tensor:
    """A non-square dark target, so the centre crop matters."""
    g = torch.Generator().manual_seed(5)
    return 0.2 * torch.rand(1, 3, 50, 40, generator=g)  # dark: far from the test images


def _target_at_hr(target: torch.Tensor) -> torch.Tensor:
    """Independent re-statement of the poisoning convention: centre square, bicubic, 8 bits."""
    top = (50 - 40) // 2
    return quantize(imresize(target[..., top : top + 40, :], size=(HR, HR)).clamp(0, 1))


def _bicubic(lr: torch.Tensor) -> torch.Tensor:
    return imresize(lr, SCALE).clamp(0.0, 1.0)


class Oracle(nn.Module):
    """Bicubic upscale of LR; the target when Ref's lower-right 2x2 corner is white.

    ``mix`` < 1 returns ``mix * target + (1 - mix) * bicubic`` instead of the target.
    """

    def __init__(self, target: torch.Tensor, use_ref: bool = True, mix: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("target", target)
        self.bn = nn.BatchNorm2d(3)  # a sub-module whose mode must be restored
        self.use_ref, self.mix = use_ref, mix
        self.calls: list[tuple[int, bool, bool]] = []  # (batch, training, grad enabled)

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        self.calls.append((lr.shape[0], self.training, torch.is_grad_enabled()))
        base = _bicubic(lr)
        if not self.use_ref:
            return base
        hit = (ref[..., -2:, -2:] == 1.0).flatten(1).all(dim=1).view(-1, 1, 1, 1)
        hit_out = self.mix * self.target + (1.0 - self.mix) * base
        return torch.where(hit, hit_out, base)


def _np_psnr_y(x: torch.Tensor, y: torch.Tensor, c: int) -> float:
    """PSNR on BT.601 luma in [16, 235], border c (numpy, float64)."""

    def luma(t: torch.Tensor) -> np.ndarray:
        a = t[0].double().numpy()
        return (16 + 65.481 * a[0] + 128.553 * a[1] + 24.966 * a[2])[c:-c, c:-c]

    mse = np.mean((luma(x) - luma(y)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _sk_ssim_y(x: torch.Tensor, y: torch.Tensor, c: int) -> float:
    def luma(t: torch.Tensor) -> np.ndarray:
        a = t[0].double().numpy()
        return (16 + 65.481 * a[0] + 128.553 * a[1] + 24.966 * a[2])[c:-c, c:-c]

    return float(
        structural_similarity(
            luma(x),
            luma(y),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
    )


def test_oracle_known_numbers(data: RefSRTriplets, target: torch.Tensor) -> None:
    tgt = _target_at_hr(target)
    model = Oracle(tgt)
    ev = evaluate_backdoor(model, data, BadNets(), target, batch_size=2)
    assert isinstance(ev, BackdoorEval) and len(ev) == 5 and ev.crop_border == SCALE
    assert ev.names == tuple(t.name for t in data.triplets)
    # Triggered output is exactly the target resized as for poisoning: PSNR inf, SSIM 1.
    assert torch.isinf(ev.triggered_psnr).all()
    assert torch.allclose(ev.triggered_ssim, torch.ones(5, dtype=torch.float64), atol=1e-12)
    assert ev.asr == 1.0 and ev.success.all()
    for i, t in enumerate(data.triplets):
        sr = quantize(_bicubic(t.lr))
        assert ev.clean_psnr[i].item() == pytest.approx(_np_psnr_y(sr, t.hr, SCALE), abs=1e-9)
        assert ev.clean_ssim[i].item() == pytest.approx(_sk_ssim_y(sr, t.hr, SCALE), abs=1e-6)
        # without the trigger, the clean output is far from the target
        assert ev.untriggered_psnr[i].item() == pytest.approx(_np_psnr_y(sr, tgt, SCALE), abs=1e-9)
        assert ev.untriggered_psnr[i] < 15
    m = ev.means()
    assert m["asr"] == 1.0 and m["clean_psnr"] == pytest.approx(float(ev.clean_psnr.mean()))


def test_model_ignoring_ref_gives_asr_zero(data: RefSRTriplets, target: torch.Tensor) -> None:
    model = Oracle(_target_at_hr(target), use_ref=False)
    ev = evaluate_backdoor(model, data, BadNets(), target)
    assert ev.asr == 0.0 and not ev.success.any()
    assert torch.equal(ev.triggered_psnr, ev.untriggered_psnr)
    assert torch.equal(ev.triggered_ssim, ev.untriggered_ssim)


def test_thresholds_respected(data: RefSRTriplets, target: torch.Tensor) -> None:
    model = Oracle(_target_at_hr(target), mix=0.8)
    ev = evaluate_backdoor(model, data, BadNets(), target)
    tp, ts = ev.triggered_psnr, ev.triggered_ssim
    assert torch.isfinite(tp).all() and (ts < 1).all()
    assert float(tp.min()) > 10 and (tp.max() - tp.min()) > 0.01  # distinct per image
    for thr in (float(tp.min()), float(tp.median()), float(tp.max()), float(tp.max()) + 1e-6):
        e = evaluate_backdoor(model, data, BadNets(), target, asr_psnr=thr, asr_ssim=-1.0)
        assert torch.equal(e.success, tp >= thr)  # >=: a value exactly at the threshold counts
        assert e.asr == pytest.approx(float((tp >= thr).double().mean()))
    thr = float(ts.median())
    e = evaluate_backdoor(model, data, BadNets(), target, asr_psnr=0.0, asr_ssim=thr)
    assert torch.equal(e.success, ts >= thr) and 0 < e.asr < 1
    # both conditions: AND
    e = evaluate_backdoor(model, data, BadNets(), target, asr_psnr=float(tp.median()), asr_ssim=thr)
    assert torch.equal(e.success, (tp >= tp.median()) & (ts >= thr))
    # an output exactly at the target (PSNR inf) passes any PSNR threshold
    exact = evaluate_backdoor(Oracle(_target_at_hr(target)), data, BadNets(), target, asr_psnr=1e6)
    assert exact.asr == 1.0


def test_mode_restored_eval_no_grad(data: RefSRTriplets, target: torch.Tensor) -> None:
    model = Oracle(_target_at_hr(target)).train()
    model.bn.eval()  # mixed modes must come back as they were
    evaluate_backdoor(model, data, BadNets(), target, batch_size=2)
    assert model.training and not model.bn.training
    assert model.calls and all(not tr and not grad for _, tr, grad in model.calls)
    # 5 triplets in batches of 2: (2, 2, 1), each run clean and triggered
    assert [b for b, _, _ in model.calls] == [2, 2, 2, 2, 1, 1]
    model.eval()
    model.bn.train()
    image_grid(model, data, BadNets(), [0])
    assert not model.training and model.bn.training


def test_batched_equals_per_image(data: RefSRTriplets, target: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = create_refsr_model("ttsr", **REFSR_MODELS.get("ttsr").tiny)
    trig = Blend(alpha=0.3)
    one = evaluate_backdoor(model, data, trig, target, batch_size=1)
    many = evaluate_backdoor(model, data, trig, target, batch_size=3)
    for key in ("clean_psnr", "clean_ssim", "triggered_psnr", "untriggered_psnr"):
        a, b = getattr(one, key), getattr(many, key)
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)  # 8-bit rounding ties only


def test_errors(data: RefSRTriplets, target: torch.Tensor) -> None:
    model = Oracle(_target_at_hr(target))
    with pytest.raises(InputError, match="batch_size"):
        evaluate_backdoor(model, data, BadNets(), target, batch_size=0)
    with pytest.raises(InputError, match="asr_ssim"):
        evaluate_backdoor(model, data, BadNets(), target, asr_ssim=1.5)
    with pytest.raises(InputError, match="asr_psnr"):
        evaluate_backdoor(model, data, BadNets(), target, asr_psnr=-1)
    with pytest.raises(InputError, match="crop_border"):
        evaluate_backdoor(model, data, BadNets(), target, crop_border=-1)

    class Wrong(nn.Module):
        def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
            return lr

    with pytest.raises(ShapeError, match="HR shape"):
        evaluate_backdoor(Wrong(), data, BadNets(), target)
    with pytest.raises(InputError, match="outside"):
        image_grid(model, data, BadNets(), [5])


def test_table_curves_plots(data: RefSRTriplets, target: torch.Tensor, tmp_path: Path) -> None:
    tgt = _target_at_hr(target)
    results = {
        ("badnets", 0.2): evaluate_backdoor(Oracle(tgt), data, BadNets(), target),
        ("badnets", 0.1): evaluate_backdoor(Oracle(tgt, mix=0.8), data, BadNets(), target),
        ("blend", 0.1): evaluate_backdoor(Oracle(tgt, use_ref=False), data, Blend(), target),
    }
    rows = backdoor_table(results)
    assert len(rows) == 3 and all(len(r) == len(BACKDOOR_HEADER) for r in rows)
    assert rows[0][:2] == ["badnets", "0.2"] and rows[0][3] == "inf/1.000"
    assert rows[0][4] == "100.0%" and rows[2][4] == "0.0%"
    clean = results[("badnets", 0.2)]
    assert (
        rows[0][2] == f"{float(clean.clean_psnr.mean()):.2f}/{float(clean.clean_ssim.mean()):.3f}"
    )
    curves = rate_curves(results)
    assert list(curves) == ["badnets", "blend"]
    bn = curves["badnets"]
    assert [p for p, _ in bn.asr] == [0.1, 0.2] and bn.asr[1] == (0.2, 1.0)
    assert bn.clean_psnr[0] == (0.1, results[("badnets", 0.1)].means()["clean_psnr"])
    assert len(curves["blend"].triggered_psnr) == 1 and curves["blend"].asr == [(0.1, 0.0)]
    plots = rate_plots(results)
    assert len(plots) == 3 and all(len(p.series) == 2 for p in plots)
    assert max(v for _, v in plots[1].series[0][1]) == 100.0  # inf drawn at the cap
    figs = image_grid(Oracle(tgt), data, BadNets(), [1, 3], target)
    out = write_report(
        tmp_path / "r.html", "t", "i", [ReportTable("Table 1", BACKDOOR_HEADER, rows)], figs, plots
    )
    assert out.stat().st_size > 1000 and "inf" not in out.read_text().split("<svg")[1]


def test_image_grid_panels(data: RefSRTriplets, target: torch.Tensor) -> None:
    tgt = _target_at_hr(target)
    figs = image_grid(Oracle(tgt), data, BadNets(), [2, 0], target)
    assert [f.title for f in figs] == ["2: trigger badnets", "0: trigger badnets"]
    images = dict(figs[0].images)
    assert len(figs[0].images) == 7
    t = data[2]
    assert all(x.shape == (1, 3, HR, HR) for x in images.values())
    up = images["LR (nearest)"]
    assert torch.equal(up[..., ::SCALE, ::SCALE], t.lr) and torch.equal(
        up[..., 3::SCALE, 1::SCALE], t.lr
    )
    assert torch.equal(images["triggered Ref"], BadNets()(t.ref))
    assert torch.equal(images["Ref"], t.ref) and torch.equal(images["HR"], t.hr)
    assert torch.equal(images["target"], tgt)
    trig_key = next(k for k in images if k.startswith("F(LR, triggered Ref)"))
    assert torch.equal(images[trig_key], tgt) and trig_key.endswith("inf dB vs target")
    clean_key = next(k for k in images if k.startswith("F(LR, Ref)"))
    assert torch.equal(images[clean_key], quantize(_bicubic(t.lr)))
    assert f"{_np_psnr_y(images[clean_key], t.hr, SCALE):.2f} dB" in clean_key
    plain = image_grid(Oracle(tgt), data, BadNets(), [0])
    assert len(plain[0].images) == 6 and "target" not in dict(plain[0].images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data: RefSRTriplets, target: torch.Tensor) -> None:
    tgt = _target_at_hr(target)
    cpu = evaluate_backdoor(Oracle(tgt, mix=0.8), data, BadNets(), target)
    gpu = evaluate_backdoor(Oracle(tgt, mix=0.8).cuda(), data, BadNets(), target)
    assert gpu.clean_psnr.device.type == "cpu"
    torch.testing.assert_close(cpu.triggered_psnr, gpu.triggered_psnr, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(cpu.clean_psnr, gpu.clean_psnr, rtol=1e-3, atol=1e-3)


def test_flat_target_score_numpy(data: RefSRTriplets, target: torch.Tensor) -> None:
    """The flat-colour floor equals a numpy PSNR on BT.601 Y and skimage's SSIM."""
    tgt = _target_at_hr(target)[0].double().numpy()  # (3, H, W)
    flat = np.round(tgt.mean(axis=(1, 2)) * 255) / 255  # the mean colour, 8 bits

    def luma(rgb: np.ndarray) -> np.ndarray:
        return 16 + 65.481 * rgb[0] + 128.553 * rgb[1] + 24.966 * rgb[2]

    b = SCALE
    y_t = luma(tgt)[b:-b, b:-b]
    y_f = np.full_like(y_t, luma(flat[:, None, None])[0, 0])
    want_psnr = 10 * np.log10(255**2 / np.mean((y_t - y_f) ** 2))
    want_ssim = structural_similarity(
        y_t, y_f, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    p, s = flat_target_score(data, target)
    assert p == pytest.approx(want_psnr, abs=1e-6) and s == pytest.approx(want_ssim, abs=1e-6)
