"""Benchmarks keep working: a --quick run prints its headline figures last."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def _quick(script: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return res.stdout.strip().splitlines()


def test_sr_models_benchmark_quick() -> None:
    lines = _quick("sr_models.py")
    heads = dict(
        line.split(": ") for line in lines if line.endswith(tuple("0123456789")) and ": " in line
    )
    for name in ("bicubic", "edsr", "rcan", "carn-m", "rrdb", "imdn", "vdsr", "srresnet"):
        assert float(heads[f"{name}_fwd_ms"]) > 0 and float(heads[f"{name}_fwd_bwd_ms"]) > 0


def test_resize_metrics_benchmark_quick() -> None:
    tail = _quick("resize_metrics.py")[-4:]
    names = [line.split(":")[0] for line in tail]
    assert names == [
        "imresize_down_x0.5_speedup_vs_basicsr_numpy",
        "imresize_up_x2_speedup_vs_basicsr_numpy",
        "ssim_speedup_vs_skimage",
        "ssim_speedup_vs_basicsr_numpy",
    ]
    assert all(float(line.split(":")[1]) > 0 for line in tail)


def test_attack_benchmarks_quick() -> None:
    speed = _quick("attack_speed.py")
    assert speed[-2].startswith("pgd_limit_ratio: ")
    assert speed[-1].startswith("deepfool_batch_speedup: ")
    overhead = _quick("attack_overhead.py")
    assert overhead[-1].startswith("overhead_ratio: ")
    apgd = _quick("apgd_speed.py")
    assert apgd[-1].startswith("apgd_limit_ratio: ") and float(apgd[-1].split(": ")[1]) > 0


def test_defense_speed_benchmark_quick() -> None:
    tail = _quick("defense_speed.py")[-4:]
    assert [line.split(":")[0] for line in tail] == [
        "tvm_speedup_vs_art",
        "median_speedup_vs_scipy",
        "wavelet_time_ratio_vs_skimage",
        "ssim_speedup_vs_skimage",
    ]
    assert all(float(line.split(":")[1]) > 0 for line in tail)


def test_perceptual_speed_benchmark_quick() -> None:
    tail = _quick("perceptual_speed.py")[-2:]
    assert [line.split(":")[0] for line in tail] == [
        "fpgap_speedup_vs_pgap_32",
        "fpgap_speedup_vs_pgap_224",
    ]
    assert all(float(line.split(":")[1]) > 1 for line in tail)
