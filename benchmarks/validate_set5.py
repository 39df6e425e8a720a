"""Validation against the literature on the shared Set5 copy (MATLAB-made LR files).

Prints, per scale: for each image, the fraction of pixels where our MATLAB-compatible
downscale of the HR (rounded to 8 bits) is within 1 grey level of / identical to the
shipped LR file; then bicubic Y-PSNR/SSIM (8-bit output, border = scale) against the
published figures. Usage::

    python benchmarks/validate_set5.py [--set5 ../shared/data/sr/Set5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from advsr.imaging import imresize, quantize
from advsr.io import read_image
from advsr.metrics import psnr, ssim

PUBLISHED = {2: 33.66, 4: 28.42}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "sr" / "Set5"
    ap.add_argument("--set5", type=Path, default=default)
    args = ap.parse_args()
    if not args.set5.is_dir():
        sys.exit(f"no Set5 folder at {args.set5}")
    heads = {}
    for s in (2, 4):
        within, exact, ps, ss = [], [], [], []
        for hr_path in sorted((args.set5 / f"image_SRF_{s}").glob("*_HR.png")):
            hr = read_image(hr_path)
            lr = read_image(hr_path.with_name(hr_path.name.replace("_HR", "_LR")))
            d = ((quantize(imresize(hr, 1 / s)) - lr).abs() * 255).round()
            within.append(float((d <= 1).double().mean()))
            exact.append(float((d == 0).double().mean()))
            sr = quantize(imresize(lr, float(s)))
            ps.append(float(psnr(sr, hr, crop_border=s, y_channel=True)[0]))
            ss.append(float(ssim(sr, hr, crop_border=s, y_channel=True)[0]))
            print(
                f"x{s} {hr_path.stem}: LR within 1 level {within[-1]:.4%}, identical "
                f"{exact[-1]:.2%}, bicubic PSNR {ps[-1]:.3f} dB SSIM {ss[-1]:.4f}"
            )
        heads[f"x{s}_lr_within_1_level_min"] = f"{min(within):.4%}"
        heads[f"x{s}_bicubic_y_psnr"] = f"{np.mean(ps):.3f} (published {PUBLISHED[s]})"
        heads[f"x{s}_bicubic_y_ssim"] = f"{np.mean(ss):.4f}"
    for k, v in heads.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
