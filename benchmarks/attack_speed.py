"""Classifier attack speed: PGD-10 against 10 bare passes, DeepFool batched against a loop.

* ``pgd_limit_ratio``: time of PGD with 10 steps divided by 10 x the time of one
  forward+backward of the cross-entropy w.r.t. the input, same model and batch, same run
  (target <= 1.02: the loop should cost nothing but its passes).
* ``deepfool_batch_speedup``: DeepFool on a batch of 64 images in one call vs the same code
  called image by image (target >= 5).

Model: the official CIFAR-10 ResNet-20 when ``--weights`` is given, else the same
architecture with random weights (timing does not depend on the weights); images: random.

Usage::

    python benchmarks/attack_speed.py [--quick] [--device cpu|cuda] [--weights resnet20.th]

The last lines are ``pgd_limit_ratio: X`` and ``deepfool_batch_speedup: X``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks.classifier import ATTACKS
from advsr.attacks.minimal import deepfool
from advsr.models.classifiers import create_classifier
from benchmarks._timing import timeit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    dev = torch.device(args.device)
    n = 8 if args.quick else args.batch
    repeat = 1 if args.quick else 3
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    clf = create_classifier("resnet20-cifar10", args.weights).to(dev)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=g).to(dev)
    with torch.no_grad():
        y = clf(x).argmax(1)
    print(f"ResNet-20, batch {n}x3x32x32, device {dev}, threads {torch.get_num_threads()}")

    def one_pass() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(clf(xr), y, reduction="none").sum(), xr)

    def pgd() -> None:
        ATTACKS.get("pgd")(clf, x, y, eps=8 / 255, steps=10, generator=torch.Generator())

    t_pass = timeit(one_pass, repeat, sync)
    t_pgd = timeit(pgd, repeat, sync)
    ratio = t_pgd / (10 * t_pass)
    print(f"PGD-10 {t_pgd * 1e3:.1f} ms, 10 x forward+backward {10 * t_pass * 1e3:.1f} ms")

    t0 = time.perf_counter()
    deepfool(clf, x, y)
    sync()
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n):
        deepfool(clf, x[i : i + 1], y[i : i + 1])
    sync()
    t_loop = time.perf_counter() - t0
    print(f"DeepFool batched {t_batch * 1e3:.1f} ms, per-image loop {t_loop * 1e3:.1f} ms")
    print(f"pgd_limit_ratio: {ratio:.3f}")
    print(f"deepfool_batch_speedup: {t_loop / t_batch:.2f}")


if __name__ == "__main__":
    main()
