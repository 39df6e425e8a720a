"""Clean top-1 after each stage of the SR defense (wavelet denoising, x2 SR) and its variants.

Mustafa et al.'s defense (TIP 2020, Algorithm 1) is wavelet denoising (BayesShrink, soft,
``sigma = 0.04``, db1, YCbCr; the ``wavelet`` defense) followed by x2 super-resolution; the
classifier sees the x2 image. This script measures, on the ImageNet images the bare
EfficientNet-Lite0 classifies right (resize 256 / centre crop 224), the top-1 accuracy after:

* each stage alone: wavelet (224 px), SR (IMDN x2, 448 px), bicubic x2 (448 px);
* the compositions: wavelet + SR (the library spec ``sr:model=imdn,scale=2,weights=FILE``),
  the same resized back to 224 px (``output=input``), wavelet + bicubic x2;
* variants of the wavelet stage, each followed by bicubic x2 (cheap stand-in for the SR
  network, which loses as much; see docs/papers/sr-defense.md): levels 1-3, skimage >= 0.16's
  sigma convention, db2 / sym4, sigma 0.02, sigma estimated, sigma 0.04 / 255 (sigma on a
  0..255 scale), RGB instead of YCbCr, luma-only and chroma-only denoising, the wavelet
  output through 8-bit JPEG q95 (the reference code saves it with ``plt.imsave(...jpg)``),
  the whole chain on a 299 px view (the reference code's ``target_size=(299, 299)``);
* controls without the wavelet: nearest x2 of the input and of the wavelet output, and a
  blur of the input (bicubic down-up by 2) followed by bicubic x2.

Per stage it prints mean / std / range, the RGB PSNR of the wavelet output against the input,
the mean absolute gradient in 2 px and 16 px Haar block boundaries vs inside the blocks
(``blockiness``: 1 when no grid shows), and the mean absolute gradient overall (detail).
With ``--save DIR`` (default /tmp/sr_stages) the first image's input, wavelet output, SR of
the input and SR of the wavelet output are written as PNGs, with x4 nearest crops.

Usage::

    python benchmarks/sr_defense_stages.py --data ../shared/data/imagenet_sample250 \\
        --weights ../shared/data/weights/imdn/IMDN_x2.pth [--limit N] [--rows a,b] [--quick]

``--quick`` uses 6 images of the embedded sample photographs when ``--data`` is not given
and bicubic as the SR model when ``--weights`` is not given. The headline figures come
last, one per line: ``top1_<row>: value``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.data.labelled import LabelledSet, open_labelled
from advsr.defenses import create_defense
from advsr.defenses.wavelet import denoise_wavelet
from advsr.devices import set_threads
from advsr.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
from advsr.imaging.resize import imresize
from advsr.io import write_image
from advsr.models.classifiers import create_classifier
from benchmarks._timing import add_threads_option

Stage = Callable[[torch.Tensor], torch.Tensor]

#: rows whose name contains one of these run the SR network (about 4 s per 224 px image on
#: one CPU thread for IMDN); the others are cheap.
_NEEDS_SR = ("sr",)


def _partial_wavelet(x: torch.Tensor, channels: tuple[int, ...]) -> torch.Tensor:
    """The paper's wavelet stage applied to some YCbCr channels only (0 = Y, 1, 2 = chroma)."""
    ycc = rgb_to_ycbcr(x)
    lo = ycc.amin(dim=(-2, -1), keepdim=True)
    scale = (ycc.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-12)
    norm = (ycc - lo) / scale
    out = norm.clone()
    for c in channels:
        out[:, c : c + 1] = denoise_wavelet(norm[:, c : c + 1], sigma=0.04)
    return ycbcr_to_rgb(out * scale + lo).clamp(0.0, 1.0)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """8-bit JPEG round trip with PIL (what ``plt.imsave(name + '.jpg')`` does to an image)."""
    out = []
    for im in x:
        arr = (im.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        back = np.asarray(Image.open(buf).convert("RGB")).copy()
        out.append(torch.from_numpy(back).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out)


def _keras_nearest(keys: list[str], root: Path) -> torch.Tensor:
    """The whole image squashed to 299 x 299 by PIL nearest (keras ``load_img`` defaults)."""
    out = []
    for key in keys:
        with Image.open(root / key) as im:
            arr = np.asarray(im.convert("RGB").resize((299, 299), Image.NEAREST)).copy()
        out.append(torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out)


def _nearest2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _blockiness(x: torch.Tensor, block: int) -> float:
    """Mean |gradient| across ``block``-pixel grid lines over the mean |gradient| inside."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    on_x = (torch.arange(dx.shape[-1]) + 1) % block == 0
    on_y = (torch.arange(dy.shape[-2]) + 1) % block == 0
    across = torch.cat([dx[..., on_x].flatten(), dy[..., on_y, :].flatten()]).mean()
    inside = torch.cat([dx[..., ~on_x].flatten(), dy[..., ~on_y, :].flatten()]).mean()
    return float(across / inside.clamp_min(1e-12))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.double() - b.double()) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return float((10 * torch.log10(1.0 / mse)).mean())


def _stats(name: str, x: torch.Tensor, ref: torch.Tensor | None, block_scale: int) -> str:
    grad = float(
        torch.cat(
            [
                (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(),
                (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(),
            ]
        ).mean()
    )
    psnr = f"  PSNR vs input {_psnr(x, ref):6.2f} dB" if ref is not None else ""
    return (
        f"{name:34s} {tuple(x.shape[-2:])}  mean {x.mean():.4f} std {x.std():.4f} "
        f"range [{x.min():.3f}, {x.max():.3f}]  |grad| {grad:.4f}  "
        f"blockiness 2px {_blockiness(x, 2 * block_scale):.3f} "
        f"16px {_blockiness(x, 16 * block_scale):.3f}{psnr}"
    )


def _sample_set(size: int, limit: int) -> LabelledSet:
    """The embedded photographs, labelled by what the classifier says (a --quick stand-in)."""
    from advsr.data.imagenet import resize_center_crop
    from advsr.data.samples import sample_paths
    from advsr.io import read_image

    paths = list(sample_paths().values())[:limit]
    x = torch.cat([resize_center_crop(read_image(p), size) for p in paths])
    names = [Path(p).stem for p in paths]
    return LabelledSet("samples", names, x, torch.full((len(paths),), -1), [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="ImageNet images (wnid-prefixed names or wnid folders)")
    ap.add_argument("--weights", help="IMDN x2 weights (IMDN_x2.pth); else bicubic stands in")
    ap.add_argument("--limit", type=int, help="first N images of the folder")
    ap.add_argument("--rows", help="comma-separated substrings: run only the matching rows")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--save", default="/tmp/sr_stages", help="folder for PNGs ('' for none)")
    ap.add_argument("--quick", action="store_true", help="6 images, the cheap rows only")
    add_threads_option(ap)
    args = ap.parse_args()
    set_threads(args.threads)
    t_start = time.perf_counter()

    limit = 6 if args.quick and args.limit is None else args.limit
    clf = create_classifier("efficientnet-lite0-imagenet")

    @torch.no_grad()
    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [clf(x[i : i + args.batch]).argmax(1) for i in range(0, len(x), args.batch)]
        )

    if args.data:
        ds = open_labelled(args.data, limit=limit, size=224)
        ds299 = open_labelled(args.data, limit=limit, size=299)
        correct = predict(ds.x) == ds.y
    else:  # --quick without data: the photographs, "correct" = the classifier's own labels
        ds, ds299 = _sample_set(224, limit or 6), _sample_set(299, limit or 6)
        ds = LabelledSet(ds.name, ds.names, ds.x, predict(ds.x), [])
        ds299 = LabelledSet(ds299.name, ds299.names, ds299.x, ds.y, [])
        correct = torch.ones(len(ds), dtype=torch.bool)
    keep = [i for i, c in enumerate(correct.tolist()) if c]
    ds, ds299 = ds.select(keep), ds299.select(keep)
    root, keys = Path(args.data or "."), ds.keys
    print(
        f"{int(correct.sum())} of {len(correct)} images classified right "
        f"({100 * correct.float().mean():.1f}%); the rows below are on those"
    )

    sr_name = "bicubic (no --weights)"
    sr_spec = "sr:model=bicubic,scale=2"
    if args.weights:
        sr_name = "IMDN x2"
        sr_spec = f"sr:model=imdn,scale=2,weights={args.weights}"
    wd = create_defense("wavelet")
    sr_alone = create_defense(f"{sr_spec},denoise=none")
    paper = create_defense(sr_spec)  # the library's composition, defaults as shipped
    bic = create_defense("interpolation:mode=bicubic,factor=2,direction=up")
    blur = create_defense("interpolation:mode=bicubic,factor=2,direction=down-up")

    memo: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def once(key: str, fn: Stage) -> Stage:
        """``fn`` computed once per batch (rows that share an SR pass reuse it)."""

        def run(x: torch.Tensor) -> torch.Tensor:
            if key not in memo or memo[key][0] is not x:
                memo[key] = (x, fn(x))
            return memo[key][1]

        return run

    paper_once = once("paper", paper)
    wd_once = once("wavelet", wd)

    def wv(spec: str) -> Stage:
        d = create_defense(spec)
        return lambda x: bic(d(x))

    rows: dict[str, tuple[Stage, str]] = {  # name -> (stage, view: 224, 299, 299n)
        "none": (lambda x: x, "224"),
        "wavelet": (wd_once, "224"),
        "sr": (sr_alone, "224"),
        "bicubic_x2": (bic, "224"),
        "wavelet+sr": (paper_once, "224"),
        "wavelet+sr_back_to_224": (  # = the spec with output=input, from the same SR pass
            lambda x: imresize(paper_once(x), size=(224, 224)).clamp(0.0, 1.0),
            "224",
        ),
        "wavelet+bicubic_x2": (lambda x: bic(wd_once(x)), "224"),
        "wavelet_levels1+bicubic_x2": (wv("wavelet:levels=1"), "224"),
        "wavelet_levels2+bicubic_x2": (wv("wavelet:levels=2"), "224"),
        "wavelet_levels3+bicubic_x2": (wv("wavelet:levels=3"), "224"),
        "wavelet_modern_sigma+bicubic_x2": (wv("wavelet:legacy_sigma=false"), "224"),
        "wavelet_db2+bicubic_x2": (wv("wavelet:wavelet=db2"), "224"),
        "wavelet_sym4+bicubic_x2": (wv("wavelet:wavelet=sym4"), "224"),
        "wavelet_sigma0.02+bicubic_x2": (wv("wavelet:sigma=0.02"), "224"),
        "wavelet_sigma_estimated+bicubic_x2": (wv("wavelet:sigma=none"), "224"),
        "wavelet_sigma0.04/255+bicubic_x2": (wv(f"wavelet:sigma={0.04 / 255!r}"), "224"),
        "wavelet_rgb+bicubic_x2": (wv("wavelet:ycbcr=false"), "224"),
        "wavelet_luma_only+bicubic_x2": (lambda x: bic(_partial_wavelet(x, (0,))), "224"),
        "wavelet_chroma_only+bicubic_x2": (lambda x: bic(_partial_wavelet(x, (1, 2))), "224"),
        "wavelet+jpeg95": (lambda x: _jpeg(wd_once(x), 95), "224"),
        "wavelet+jpeg95+bicubic_x2": (lambda x: bic(_jpeg(wd_once(x), 95)), "224"),
        "nearest_x2": (_nearest2, "224"),
        "wavelet+nearest_x2": (lambda x: _nearest2(wd_once(x)), "224"),
        "blur+bicubic_x2": (lambda x: bic(blur(x)), "224"),
        "299px": (lambda x: x, "299"),
        "299px_wavelet": (wd, "299"),
        "299px_bicubic_x2": (bic, "299"),
        "299px_wavelet+bicubic_x2": (lambda x: bic(wd(x)), "299"),
        "299px_keras_nearest": (lambda x: x, "299n"),
        "299px_keras_nearest_wavelet": (wd, "299n"),
        "299px_keras_nearest_wavelet+bicubic_x2": (lambda x: bic(wd(x)), "299n"),
    }
    if not args.data:  # the keras view reads the files
        rows = {k: v for k, v in rows.items() if v[1] != "299n"}
    wanted = rows
    if args.rows:
        subs = [s.strip() for s in args.rows.split(",") if s.strip()]
        wanted = {k: v for k, v in rows.items() if k in subs}
    elif args.quick:
        wanted = {k: v for k, v in rows.items() if not any(s in k for s in _NEEDS_SR)}
    print(f"SR model: {sr_name}; rows: {', '.join(wanted)}")

    hits = {k: 0 for k in wanted}
    total = 0
    for start in range(0, len(ds), args.batch):
        x = ds.x[start : start + args.batch]
        x299 = ds299.x[start : start + args.batch]
        views = {"224": x, "299": x299}
        if any(v[1] == "299n" for v in wanted.values()):
            views["299n"] = _keras_nearest(keys[start : start + args.batch], root)
        y = ds.y[start : start + args.batch]
        with torch.no_grad():
            for name, (stage, view) in wanted.items():
                hits[name] += int((predict(stage(views[view])) == y).sum())
        total += len(y)
        done = ", ".join(f"{k} {hits[k]}" for k in list(wanted)[:6])
        print(f"  {total}/{len(ds)} images ({time.perf_counter() - t_start:.0f} s): {done}")

    # per-stage statistics on the first batch (and PNGs of its first image)
    x = ds.x[: args.batch]
    with torch.no_grad():
        w = wd(x)
        stages = {"input": (x, None, 1), "wavelet": (w, x, 1)}
        stages["bicubic_x2"] = (bic(x), None, 2)
        stages["wavelet+bicubic_x2"] = (bic(w), bic(x), 2)
        if any(s in k for k in wanted for s in _NEEDS_SR):
            s_x, s_w = sr_alone(x), paper(x)
            stages["sr"] = (s_x, None, 2)
            stages["wavelet+sr"] = (s_w, s_x, 2)
    print("\nper-stage statistics (first batch; PSNR of a composition is against the same")
    print("stage without the wavelet; blockiness grid scaled with the image):")
    for name, (im, ref, k) in stages.items():
        print("  " + _stats(name, im, ref, k))
    if args.save:
        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        top, left, side = 84, 84, 56  # a central 56 x 56 crop (112 x 112 at x2), shown x4
        for name, (im, _, k) in stages.items():
            write_image(out / f"{ds.names[0]}_{name}.png", im[:1])
            crop = im[:1, :, top * k : (top + side) * k, left * k : (left + side) * k]
            crop = F.interpolate(crop, scale_factor=4 // k, mode="nearest")
            write_image(out / f"{ds.names[0]}_{name}_crop.png", crop)
        print(f"PNGs of {ds.names[0]} in {out}")

    print(f"\n{total} images, {time.perf_counter() - t_start:.0f} s")
    for name in wanted:
        print(f"top1_{name}: {100 * hits[name] / max(total, 1):.1f}")


if __name__ == "__main__":
    main()
