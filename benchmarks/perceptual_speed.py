"""FPGAP's closed-form step against PGAP's QCQP (cvxpy): time per iteration per image.

One iteration of either attack is one gradient pass of the model (the same for both, so
left out here) plus the step that differs:

* FPGAP: :func:`~advsr.attacks.perceptual.fpgap_step` on a batch of ``--batch`` images
  (eq. 9's maximiser in closed form); its time is divided by the batch size, i.e. the
  figure is the cost per image when the step runs batched, as the attack runs it. The time
  for a batch of one is printed as well.
* PGAP: :func:`~advsr.attacks.perceptual.pgap_solve` on one image (eq. 9 with the ``[0, 1]``
  box, PGAP's default; CLARABEL unless ``--solver``): building the cvxpy problem and solving
  it, as Algorithm 1 does at every iteration (the problem is rebuilt because the gradient
  changes). The solver runs on the CPU whatever ``--device`` says.

Sizes: 3x32x32 and 3x224x224 (``--quick``: 3x16x16 and 3x32x32 under the same line names,
one repeat). Median of ``--repeat`` calls after a warm-up call (which absorbs cvxpy's
first-call costs). Random images and gradients (seeded). On a CPU shared with other jobs,
torch's multi-threaded kernels can stall on a descheduled thread (about 100 ms per op was
seen on a busy 2-core machine); ``--threads 1`` then gives the stable figure (CLARABEL runs
on one thread as well).

Usage::

    python benchmarks/perceptual_speed.py [--quick] [--device cpu|cuda] [--batch 16]
        [--repeat 5] [--solver CLARABEL|SCS] [--threads N]

The last lines are ``fpgap_speedup_vs_pgap_32: X`` and ``fpgap_speedup_vs_pgap_224: X``
(PGAP time per image / FPGAP time per image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks.perceptual import fpgap_step, pgap_solve
from benchmarks._timing import timeit


def _case(
    size: int, batch: int, repeat: int, dev: torch.device, solver: str
) -> tuple[float, float, float, str]:
    """Seconds per image: FPGAP batched, FPGAP alone, PGAP; and PGAP's last status."""
    g = torch.Generator().manual_seed(size)
    x = torch.rand(batch, 3, size, size, generator=g).to(dev)
    grad = torch.randn(batch, 3, size, size, generator=g).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t_batch = timeit(lambda: fpgap_step(x, grad, 0.05), repeat, sync) / batch
    t_one = timeit(lambda: fpgap_step(x[:1], grad[:1], 0.05), repeat, sync)
    x1, g1 = x[:1].cpu().double(), grad[:1].cpu().double()
    status: list[str] = []

    def solve() -> None:
        status.append(pgap_solve(x1, g1, 0.05, solver=solver).info.status)

    t_pgap = timeit(solve, max(1, repeat // 2), lambda: None)
    return t_batch, t_one, t_pgap, status[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--solver", default="CLARABEL")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    batch = 8 if args.quick else args.batch
    repeat = 1 if args.quick else args.repeat
    sizes = {"32": 16, "224": 32} if args.quick else {"32": 32, "224": 224}
    print(
        f"FPGAP step (batch {batch}, device {dev}) vs PGAP QCQP ({args.solver}, one image, "
        f"CPU), threads {torch.get_num_threads()}; gradient pass excluded"
    )
    speedups = {}
    for name, size in sizes.items():
        t_batch, t_one, t_pgap, status = _case(size, batch, repeat, dev, args.solver)
        speedups[name] = t_pgap / t_batch
        print(
            f"3x{size}x{size}: FPGAP {t_batch * 1e3:.4f} ms/image batched "
            f"({t_one * 1e3:.3f} ms for one image), PGAP {t_pgap * 1e3:.1f} ms/image "
            f"(status {status})"
        )
    for name in sizes:
        print(f"fpgap_speedup_vs_pgap_{name}: {speedups[name]:.1f}")


if __name__ == "__main__":
    main()
