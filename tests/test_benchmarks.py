"""Benchmarks keep working: a --quick run prints its headline figures last."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_resize_metrics_benchmark_quick() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "resize_metrics.py"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    tail = res.stdout.strip().splitlines()[-4:]
    names = [line.split(":")[0] for line in tail]
    assert names == [
        "imresize_down_x0.5_speedup_vs_basicsr_numpy",
        "imresize_up_x2_speedup_vs_basicsr_numpy",
        "ssim_speedup_vs_skimage",
        "ssim_speedup_vs_basicsr_numpy",
    ]
    assert all(float(line.split(":")[1]) > 0 for line in tail)
