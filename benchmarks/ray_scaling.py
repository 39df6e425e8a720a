"""Ray backend: speed-up of 2 workers over 1 on a CPU-bound spec, and the cost per unit.

1. **Speed-up**: the basic SR attack (``attack-sr``) on the bundled ``demo-carn-m`` x4, T = 50,
   two budgets over the bundled sample images (one unit per image), run through
   :func:`advsr.engine.driver.run_cells` on one local Ray instance with ``workers=1`` and
   ``workers=2`` in turns (ABAB..., a fresh store each time); the ratio is the median of the
   per-round ratios, so load that comes and goes hits both sides alike. Each task runs torch
   with one thread (its one CPU), so 2 workers on 2 cores do not oversubscribe.
2. **Overhead per unit**: ``eval-sr`` with bicubic on ``N`` (1000) tiny 24x24 images, one unit
   per image: (time on Ray with 1 worker - time locally) / N, the units' own work being the
   same on both sides. This is what the driver and Ray add per unit: task submission,
   re-planning the cell on the worker (cached per worker process), shipping rows back and
   writing them to the store.
3. **Projection**: cells/s for the SR-defense paper's defense table at paper size on a 10- and
   a 100-node cluster of machines like this one, from the single-machine time per cell
   (``--cell-seconds``, measured: 33 min for 168 cells at 487 images on 2 cores), the
   measured 2-worker efficiency, and the driver's limit of 1000 / overhead_ms units/s.

Usage::

    python benchmarks/ray_scaling.py [--quick] [--rounds 3] [--units 1000]

The last lines are ``ray_speedup_2_workers: X`` and ``ray_overhead_ms_per_unit: X``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.engine.backend import Backend, connect
from advsr.engine.driver import run_cells
from advsr.engine.store import ResultStore
from advsr.io import write_image


def _timed(cells: list[tuple[str, dict[str, Any]]], backend: Backend | None, tmp: Path) -> float:
    """Wall seconds of one run of ``cells`` into a fresh store."""
    path = tmp / f"s{time.monotonic_ns()}.sqlite"
    t0 = time.perf_counter()
    with ResultStore(path) as st:
        runs = run_cells(cells, st, progress=False, backend=backend)
    dt = time.perf_counter() - t0
    assert all(r.finished and r.computed == r.expected for r in runs)
    return dt


def _tiny_images(folder: Path, n: int) -> None:
    gen = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = torch.from_numpy(gen.random((3, 24, 24), dtype=np.float32))
        write_image(folder / f"img{i:04d}.png", img)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 5, 100 units, 1 round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--hr-crop", type=int, default=128)
    ap.add_argument(
        "--cell-seconds",
        type=float,
        default=33 * 60 / 168,
        help="single-machine seconds per cell of the defense table at paper size",
    )
    ap.add_argument("--cells", type=int, default=168, help="cells of the defense table")
    ap.add_argument("--units-per-cell", type=int, default=16, help="487 images / batch 32")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.units, args.rounds, args.hr_crop = 5, 100, 1, 64
    torch.set_num_threads(1)  # the local reference runs like one worker
    connect(Backend("ray", workers=2))

    base = {"model": "demo-carn-m", "scale": 4, "hr_crop": args.hr_crop, "steps": args.steps}
    attack = [("attack-sr", {**base, "eps": eps}) for eps in (2 / 255, 8 / 255)]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        one, two = Backend("ray", workers=1, unit_items=1), Backend("ray", workers=2, unit_items=1)
        _timed(attack[:1], two, tmp)  # warm the workers (imports, model, data)
        ratios = []
        for r in range(args.rounds):
            t1 = _timed(attack, one, tmp)
            t2 = _timed(attack, two, tmp)
            ratios.append(t1 / t2)
            print(f"round {r + 1}: 1 worker {t1:.2f} s, 2 workers {t2:.2f} s, ratio {t1 / t2:.3f}")
        speedup = statistics.median(ratios)

        _tiny_images(tmp / "tiny", args.units)
        empty = [("eval-sr", {"model": "bicubic", "data": str(tmp / "tiny"), "scale": 2})]
        _timed(empty, one, tmp)  # warm: the worker plans the cell once
        _timed(empty, None, tmp)
        overheads = []
        for r in range(args.rounds):
            t_local = _timed(empty, None, tmp)
            t_ray = _timed(empty, one, tmp)
            overheads.append((t_ray - t_local) / args.units * 1000)
            print(
                f"round {r + 1}: {args.units} units locally {t_local:.2f} s, "
                f"on Ray (1 worker) {t_ray:.2f} s"
            )
        overhead = statistics.median(overheads)

    eff = min(1.0, speedup / 2)  # never project above linear
    limit = 1000 / max(overhead, 1e-6)  # units/s one driver can take in
    print(f"projection (cells of {args.cell_seconds:.1f} s on one 2-core machine, efficiency "
          f"{eff:.2f} per worker, driver limit {limit:.0f} units/s):")  # fmt: skip
    for nodes in (10, 100):
        compute = nodes * 2 * eff / (2 * args.cell_seconds)  # 2 workers a node, 2 cores a cell
        driver = limit / args.units_per_cell
        rate = min(compute, driver)
        print(
            f"  {nodes} nodes: {nodes} x 2 workers x {eff:.2f} / ({args.cell_seconds:.1f} s x 2)"
            f" = {compute:.2f} cells/s; driver bound {driver:.1f} cells/s -> {rate:.2f} cells/s,"
            f" {args.cells} cells in {args.cells / rate / 60:.1f} min"
        )
    print(f"ray_speedup_2_workers: {speedup:.3f}")
    print(f"ray_overhead_ms_per_unit: {overhead:.2f}")


if __name__ == "__main__":
    main()
