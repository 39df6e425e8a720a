"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import argparse
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


def paired(
    num: Callable[[], object],
    den: Callable[[], object],
    rounds: int,
    sync: Callable[[], None],
    scale: float = 1.0,
) -> tuple[float, float, float]:
    """Median times of ``num`` and ``den`` and the median of the per-round ratios
    ``num / (scale * den)``.

    Each round times both, in the order AB then BA on alternate rounds, so load that comes
    and goes hits both sides of a round alike; the median of the rounds' own ratios is what
    stays stable on a busy machine (a median of times taken at different moments is not).
    One warm-up call each first.
    """
    num()
    den()
    sync()
    tn: list[float] = []
    td: list[float] = []
    for r in range(max(1, rounds)):
        order = ((num, tn), (den, td)) if r % 2 == 0 else ((den, td), (num, tn))
        for fn, out in order:
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
    ratios = [a / (scale * b) for a, b in zip(tn, td, strict=True)]
    return statistics.median(tn), statistics.median(td), statistics.median(ratios)


def add_threads_option(ap: argparse.ArgumentParser) -> None:
    """``--threads auto|N`` on a benchmark's argument parser (default auto)."""
    ap.add_argument(
        "--threads", default="auto", help="torch CPU threads: auto (CPUs not busy) or N"
    )
