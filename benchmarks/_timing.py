"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timeit(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    """Median wall time in seconds of ``repeat`` calls after one warm-up call.

    ``sync`` waits for queued device work (``torch.cuda.synchronize`` on a GPU).
    """
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
