"""Forward and forward+backward time of every SR zoo model on one 3x64x64 input.

Official architecture sizes (EDSR 43M parameters ... CARN-M 0.4M), each at x4 where it
supports it (else its largest scale), random weights (timing does not depend on them).
The reference measured in the same run is bicubic (MATLAB-compatible, our imresize); each
model's line gives its time and the ratio to bicubic. forward+backward computes the
gradient with respect to the input, as an attack does.

Usage::

    python benchmarks/sr_models.py [--quick] [--device cpu|cuda] [--size 64] [--repeat 3]

``--quick`` uses each entry's tiny configuration and one repeat (a smoke run). Headline
figures are printed last, one per line, as ``name: value``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.models.sr import SR_MODELS, create_sr_model
from benchmarks._timing import timeit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    repeat = 1 if args.quick else args.repeat
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(dev)
    print(f"input 1x3x{args.size}x{args.size}, device {dev}, threads {torch.get_num_threads()}")

    def measure(model: torch.nn.Module) -> tuple[float, float]:
        def fwd() -> None:
            with torch.no_grad():
                model(x)

        def fwd_bwd() -> None:
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xr).sum(), xr)

        return timeit(fwd, repeat, sync), timeit(fwd_bwd, repeat, sync)

    heads: dict[str, float] = {}
    ref_f = ref_b = 0.0
    for name in SR_MODELS.names():
        if name.startswith("demo-"):
            continue
        entry = SR_MODELS.get(name)
        scale = 4 if 4 in entry.scales else max(entry.scales)
        torch.manual_seed(0)
        arch = entry.tiny if args.quick else {}
        model = create_sr_model(name, scale, arch=arch, bundled=False).to(dev)
        n = sum(p.numel() for p in model.parameters())
        f, b = measure(model)
        if name == "bicubic":  # sorted first: the reference of the ratios
            ref_f, ref_b = f, b
        print(
            f"{name:14s} x{scale} {n:>11,d} params  forward {f * 1e3:9.1f} ms "
            f"({f / ref_f:7.1f}x bicubic)  forward+backward {b * 1e3:9.1f} ms "
            f"({b / ref_b:7.1f}x bicubic)"
        )
        heads[f"{name}_fwd_ms"] = f * 1e3
        heads[f"{name}_fwd_bwd_ms"] = b * 1e3
    for key, v in heads.items():
        print(f"{key}: {v:.2f}")


if __name__ == "__main__":
    main()
