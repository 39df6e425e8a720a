"""Peak memory (RSS) of attacking one 256x256 LR image with CARN-M x4 on the CPU.

Runs the basic attack (T steps) in this process and prints the peak resident set size
(``resource.getrusage``), which includes the Python interpreter and torch itself. The
requirement is <= 4 GB. Usage::

    python benchmarks/attack_memory.py [--size 256] [--steps 5] [--weights carn_m.pth]

The last line is ``peak_rss_gb: X``.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from advsr.attacks import basic_attack
from advsr.models.sr import create_sr_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--weights", default=None, help="official carn_m.pth (random if absent)")
    args = ap.parse_args()
    model = create_sr_model("carn-m", 4, args.weights)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    basic_attack(model, x, eps=8 / 255, steps=args.steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(
        f"LR {args.size}x{args.size} -> SR {4 * args.size}x{4 * args.size}, T={args.steps}, "
        f"{time.perf_counter() - t0:.1f} s; RSS before the attack {before:.2f} GB"
    )
    print(f"peak_rss_gb: {peak:.2f}")


if __name__ == "__main__":
    main()
