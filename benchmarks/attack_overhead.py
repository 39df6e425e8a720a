"""Overhead of the attack engine: basic attack with T steps vs T bare forward+backward passes.

For each model, on the same batch and in the same run (paired rounds, the median of the
per-round ratios: ``benchmarks/_timing.paired``): the time of
``basic_attack(model, x, steps=T)`` divided by ``T`` times the time of one forward+backward
of the same objective (``||f(X) - f(X0)_8bit||_2`` per image, gradient w.r.t. the input).
A ratio near 1 means the loop adds nothing but the passes it must make (the reference output
and the final measurement are the attack's only extra forwards). Target: <= 1.10.

Usage::

    python benchmarks/attack_overhead.py [--quick] [--device cpu|cuda] [--steps 20]

The last line is ``overhead_ratio: X`` (the worst model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks import basic_attack, sr_deviation, sr_reference
from advsr.devices import set_threads
from advsr.models.sr import SR_MODELS, create_sr_model
from benchmarks._timing import add_threads_option, paired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=48, help="LR size")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    add_threads_option(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    dev = torch.device(args.device)
    steps = 3 if args.quick else args.steps
    rounds = 7 if args.quick else args.rounds
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(dev)
    print(
        f"batch {args.batch}x3x{args.size}x{args.size}, T={steps}, device {dev},"
        f" threads {threads}, {rounds} paired rounds"
    )
    worst = 0.0
    for name in ("carn-m", "demo-edsr"):
        arch = SR_MODELS.get(name).tiny if args.quick else {}
        torch.manual_seed(0)
        model = create_sr_model(name, 4, arch=arch, bundled=not args.quick).to(dev)
        ref = sr_reference(model, x, "clean-8bit")
        objective = sr_deviation(model, ref)

        def one_pass(objective=objective) -> None:  # type: ignore[no-untyped-def]
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(objective(xr).sum(), xr)

        def attack(model=model) -> None:  # type: ignore[no-untyped-def]
            basic_attack(model, x, eps=8 / 255, steps=steps)

        t_attack, t_pass, ratio = paired(attack, one_pass, rounds, sync, scale=steps)
        worst = max(worst, ratio)
        print(
            f"{name}: attack {t_attack * 1e3:.1f} ms, {steps} x pass {steps * t_pass * 1e3:.1f} ms,"
            f" ratio {ratio:.3f}"
        )
    print(f"overhead_ratio: {worst:.3f}")


if __name__ == "__main__":
    main()
