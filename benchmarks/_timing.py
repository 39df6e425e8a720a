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


def interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, sync: Callable[[], None]
) -> dict[str, float]:
    """Median wall time in seconds of each function, the calls taken in turns.

    Alternating the candidates (a, b, a, b, ...) after one warm-up call each keeps a
    drifting machine load from favouring whichever was measured first.
    """
    for fn in fns.values():
        fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
