"""Benchmarks keep working: a --quick run prints its headline figures last."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
    tail = _quick("defense_speed.py")[-16:]
    defenses = ("quilting", "quilting-tvm", "pixel-deflection", "tvm", "kmeans", "sr")
    assert [line.split(":")[0] for line in tail] == [
        "tvm_speedup_vs_art",
        "median_speedup_vs_scipy",
        "wavelet_time_ratio_vs_skimage",
        "ssim_speedup_vs_skimage",
        *(f"{d}_s_per_224px{suffix}" for d in defenses for suffix in ("", "_before")),
    ]
    assert all(float(line.split(":")[1]) > 0 for line in tail)


def test_perceptual_speed_benchmark_quick() -> None:
    tail = _quick("perceptual_speed.py")[-2:]
    assert [line.split(":")[0] for line in tail] == [
        "fpgap_speedup_vs_pgap_32",
        "fpgap_speedup_vs_pgap_224",
    ]
    assert all(float(line.split(":")[1]) > 1 for line in tail)


def test_paired_rounds_alternate_and_take_the_median_of_round_ratios(monkeypatch) -> None:
    from benchmarks import _timing

    clock = [0.0]
    calls: list[str] = []
    # (num, den) durations per call: the warm-up, then 4 rounds; round 3 runs under load
    durations = {"num": [9.0, 2.0, 2.2, 20.0, 2.0], "den": [9.0, 1.0, 1.1, 10.0, 0.5]}

    def fake(name: str):
        def run() -> None:
            calls.append(name)
            clock[0] += durations[name][sum(c == name for c in calls) - 1]

        return run

    monkeypatch.setattr(_timing.time, "perf_counter", lambda: clock[0])
    t_num, t_den, ratio = _timing.paired(fake("num"), fake("den"), 4, lambda: None, scale=2.0)
    assert calls == ["num", "den", "num", "den", "den", "num", "num", "den", "den", "num"]
    assert (t_num, t_den) == pytest.approx((2.1, 1.05))  # medians of the 4 timed calls
    # per-round ratios 2/(2*1), 2.2/(2*1.1), 20/(2*10), 2/(2*0.5) = 1, 1, 1, 2: median 1
    assert ratio == pytest.approx(1.0)


def test_defend_scale_benchmark_quick() -> None:
    tail = _quick("defend_scale.py")[-3:]
    heads = dict(line.split(": ") for line in tail)
    assert list(heads) == ["defend_peak_rss_gb", "probe_time_share", "adaptive_limit_ratio"]
    assert 0 < float(heads["defend_peak_rss_gb"]) < 24
    assert 0 <= float(heads["probe_time_share"]) < 1
    assert float(heads["adaptive_limit_ratio"]) > 0
