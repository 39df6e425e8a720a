"""Speed of advsr's imresize and ssim against their references, measured in one run.

Batch of 16 RGB images of 256x256. References:
* imresize (x1/2 and x2): the numpy port of BasicSR's MATLAB imresize
  (``tests/references/basicsr_numpy.py``), image by image;
* ssim: ``skimage.metrics.structural_similarity`` (Gaussian, sigma 1.5, population
  covariance, data_range 255) image by image, and the numpy port of BasicSR's calculate_ssim.

Usage::

    python benchmarks/resize_metrics.py [--quick] [--device cpu|cuda] [--threads N]

The headline figures are printed last, one per line, as ``name: value``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.references.basicsr_numpy import imresize_np, ssim_np

from advsr.imaging import imresize
from advsr.metrics import ssim
from benchmarks._timing import timeit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 images, 1 repeat (smoke run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    n = 4 if args.quick else 16
    repeat = 1 if args.quick else 5
    ref_repeat = 1 if args.quick else 2
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 256, 256, generator=g)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    xd, yd = x.to(dev), y.to(dev)
    xs = [im.permute(1, 2, 0).double().numpy() for im in x]
    ys = [im.permute(1, 2, 0).double().numpy() for im in y]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    nosync = lambda: None  # noqa: E731

    print(f"batch {n}x3x256x256, device {dev}, torch threads {torch.get_num_threads()}")
    res: dict[str, float] = {}
    for label, scale in (("down_x0.5", 0.5), ("up_x2", 2.0)):
        t_ours = timeit(lambda s=scale: imresize(xd, s), repeat, sync)
        t_ref = timeit(lambda s=scale: [imresize_np(a, s) for a in xs], ref_repeat, nosync)
        err = max(
            float(
                np.abs(
                    imresize(x[i : i + 1], scale)[0].permute(1, 2, 0).double().numpy()
                    - imresize_np(xs[i], scale)
                ).max()
            )
            for i in range(2)
        )
        print(
            f"imresize {label}: advsr {t_ours * 1e3:.1f} ms, basicsr-numpy {t_ref * 1e3:.1f} ms,"
            f" max |diff| {err:.2e}"
        )
        res[f"imresize_{label}_speedup_vs_basicsr_numpy"] = t_ref / t_ours

    t_ours = timeit(lambda: ssim(xd, yd), repeat, sync)
    kw = dict(
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
        channel_axis=2,
    )
    t_sk = timeit(
        lambda: [
            structural_similarity(a * 255, b * 255, **kw) for a, b in zip(xs, ys, strict=True)
        ],
        ref_repeat,
        nosync,
    )
    t_bs = timeit(
        lambda: [ssim_np(a, b, 0, False) for a, b in zip(xs, ys, strict=True)], ref_repeat, nosync
    )
    ours = ssim(x, y).numpy()
    sk = np.array(
        [structural_similarity(a * 255, b * 255, **kw) for a, b in zip(xs, ys, strict=True)]
    )
    print(
        f"ssim (RGB): advsr {t_ours * 1e3:.1f} ms, skimage {t_sk * 1e3:.1f} ms,"
        f" basicsr-numpy {t_bs * 1e3:.1f} ms, max |diff| vs skimage {np.abs(ours - sk).max():.2e}"
    )
    res["ssim_speedup_vs_skimage"] = t_sk / t_ours
    res["ssim_speedup_vs_basicsr_numpy"] = t_bs / t_ours
    for k, v in res.items():
        print(f"{k}: {v:.2f}")


if __name__ == "__main__":
    main()
