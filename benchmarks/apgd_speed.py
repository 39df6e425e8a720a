"""APGD's overhead: APGD-100 against 100 bare forward+backward passes, same model and batch.

APGD evaluates the loss and its gradient once per iteration (plus once at the random start)
and keeps the best point and the step-size bookkeeping on the side; this measures what that
costs over the passes it must make. Times are taken in turns in one run
(paired rounds, median of per-round ratios: ``benchmarks/_timing.paired``). Target: <= 1.05.

Model: CIFAR-10 ResNet-20 (the official weights with ``--weights``, else random), a batch of
random 32x32 images (the ratio does not depend on the pixels).

Usage::

    python benchmarks/apgd_speed.py [--quick] [--device cpu|cuda] [--weights resnet20.th]

The last line is ``apgd_limit_ratio: X``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks import create_attack
from advsr.devices import set_threads
from advsr.models.classifiers import create_classifier
from benchmarks._timing import add_threads_option, paired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    add_threads_option(ap)
    args = ap.parse_args()
    set_threads(args.threads)
    dev = torch.device(args.device)
    n, steps = (8, 10) if args.quick else (args.batch, args.steps)
    repeat = 3 if args.quick else args.repeat
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    clf = create_classifier("resnet20-cifar10", args.weights, bundled=False).to(dev).eval()
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(dev)
    with torch.no_grad():
        y = clf(x).argmax(1)
    print(
        f"ResNet-20, batch {n}x3x32x32, APGD-{steps}, device {dev}, threads "
        f"{torch.get_num_threads()}"
    )

    def one_pass() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(clf(xr), y, reduction="none").sum(), xr)

    def apgd() -> None:
        create_attack("apgd@8/255", steps=steps)(clf, x, y, generator=torch.Generator())

    t_apgd, t_pass, ratio = paired(apgd, one_pass, repeat, sync, scale=steps)
    print(
        f"APGD-{steps} {t_apgd * 1e3:.1f} ms, {steps} x forward+backward "
        f"{steps * t_pass * 1e3:.1f} ms"
    )
    print(f"apgd_limit_ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
