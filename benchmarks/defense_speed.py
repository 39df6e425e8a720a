"""Defense speed against the reference implementations, batch 16 of 3 x 299 x 299 on CPU.

In one run, on the same images (noisy crops of scikit-image photos, see ``tvm_vs_art.py``):

* TVM: advsr's batched primal-dual ``TVMDefense`` kernel vs ART's ``TotalVarMin`` (real ART in
  the venv ``--art-python``; without it, a scipy port of ART's procedure, said so), same
  masks, ART's defaults (keep 0.3, lam 0.5, L2 TV); the objective ratio is printed too;
* median 3x3: ``advsr.defenses.filters.median_filter`` vs ``scipy.ndimage.median_filter``
  (``size=(1, 3, 3)``, ``mode='reflect'``) image by image;
* wavelet: ``advsr.defenses.wavelet.denoise_wavelet`` vs
  ``skimage.restoration.denoise_wavelet`` (BayesShrink, soft, sigma estimated, db1,
  ``channel_axis=-1``) image by image, float64 both (the ratio is ours / theirs: <= 1.2 is
  the target);
* SSIM: ``advsr.metrics.ssim`` (the default ``precision="fast"``: float32 separable
  convolutions on centred data, Gaussian 11x11; and the ``"float64"`` reference, timed for
  comparison) vs ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=0)`` image by image; the max
  ``|SSIM|`` difference of the fast path to skimage and to the float64 path is printed.

* seconds per 224 x 224 image of the defenses the adaptive (EOT) columns call many times:
  ``quilting`` and ``quilting-tvm`` (``bank_data=samples,bank_size=224,max_patches=20000``,
  the ImageNet spec of the paper reproduction), ``pixel-deflection``, ``tvm``, ``kmeans``
  and the SR stage ``sr:model=demo-edsr,scale=2``, on a batch of 4 (``--quick``: 1 image,
  a 2000-patch bank). The ``_before`` figures of quilting and quilting-tvm are measured in
  the same run with the previous, dense nearest-neighbour search (``search="dense"``, paired
  rounds); the same-seed outputs of both searches are compared (identical pixels, PSNR to
  the input, mean, std). The other four defenses are unchanged since commit 47f43c2; their
  ``_before`` figures are the ones recorded there (1 thread, batch 4, 3 rounds, median),
  printed as such:

  =================  =========
  defense            s / image
  =================  =========
  quilting           1.135
  quilting-tvm       1.171
  pixel-deflection   0.006
  tvm                0.021
  kmeans             0.098
  sr                 0.473
  =================  =========

Candidates are timed in turns (median of ``--repeat``). Usage::

    python benchmarks/defense_speed.py [--quick] [--threads 1] [--art-python /tmp/art/bin/python]

The last lines are ``tvm_speedup_vs_art``, ``median_speedup_vs_scipy``,
``wavelet_time_ratio_vs_skimage``, ``ssim_speedup_vs_skimage``, then
``<defense>_s_per_224px`` and ``<defense>_s_per_224px_before`` for each defense above.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import scipy.ndimage as ndi
import torch
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_wavelet as sk_denoise_wavelet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.defenses.filters import median_filter
from advsr.defenses.quilting import Quilting
from advsr.defenses.registry import create_defense
from advsr.defenses.tvm import TVMDefense, tv_minimize, tv_objective
from advsr.defenses.wavelet import denoise_wavelet
from advsr.devices import set_threads
from advsr.metrics import ssim
from benchmarks._timing import add_threads_option, interleaved, paired, timeit
from benchmarks.tvm_vs_art import _images, _real_art, _scipy_port

# s / 224 px image at commit 47f43c2 (1 thread, batch 4): see the module docstring
RECORDED_BEFORE = {
    "quilting": 1.135,
    "quilting-tvm": 1.171,
    "pixel-deflection": 0.006,
    "tvm": 0.021,
    "kmeans": 0.098,
    "sr": 0.473,
}


def _set_search(defense: torch.nn.Module, search: str) -> None:
    for m in defense.modules():
        if isinstance(m, Quilting):
            m.search = search  # type: ignore[assignment]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / (a.double() - b.double()).pow(2).mean()))


def per_image_224(quick: bool, repeat: int) -> list[str]:
    """Seconds per 224 px image of each defense; the headline lines (after, before)."""
    n = 1 if quick else 4
    bank = "bank_data=samples,bank_size=224,max_patches=" + ("2000" if quick else "20000")
    specs = {
        "quilting": f"quilting:{bank}",
        "quilting-tvm": f"quilting-tvm:{bank}",
        "pixel-deflection": "pixel-deflection",
        "tvm": "tvm",
        "kmeans": "kmeans",
        "sr": "sr:model=demo-edsr,scale=2",
    }
    x = _images(n, 224)
    sync = lambda: None  # noqa: E731 - CPU only
    lines = []
    print(f"defenses at 224 px: batch {n}, seconds per image")
    for name, spec in specs.items():
        d = create_defense(spec).eval()

        def call(search: str | None = None, d: torch.nn.Module = d) -> torch.Tensor:
            if search is not None:
                _set_search(d, search)
            with torch.no_grad():
                return d(x, generator=torch.Generator().manual_seed(0))

        if name.startswith("quilting"):
            t_new, t_old, ratio = paired(
                lambda: call("pruned"), lambda: call("dense"), repeat, sync
            )
            new, old = call("pruned"), call("dense")
            same = int((new != old).any(1).sum())
            gap = float((new - old).abs().max())
            print(
                f"{name}: pruned search {t_new / n:.3f} s, dense (before) {t_old / n:.3f} s, "
                f"ratio {ratio:.3f}; same seed: {same} of {n * 224 * 224} pixels differ "
                f"(max |diff| {gap:.2e}); PSNR to input {_psnr(new, x):.3f} / "
                f"{_psnr(old, x):.3f} dB, mean "
                f"{float(new.mean()):.5f} / {float(old.mean()):.5f}, std "
                f"{float(new.std()):.5f} / {float(old.std()):.5f} (after / before)"
            )
            before = f"{t_old / n:.3f}"
        else:
            t_new = timeit(call, repeat, sync)
            before = f"{RECORDED_BEFORE[name]:.3f}"
            print(f"{name}: {t_new / n:.3f} s (unchanged code; before: recorded at 47f43c2)")
        lines += [f"{name}_s_per_224px: {t_new / n:.3f}", f"{name}_s_per_224px_before: {before}"]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--art-python", default="/tmp/art/bin/python")
    ap.add_argument("--repeat", type=int, default=5)
    add_threads_option(ap)
    args = ap.parse_args()
    set_threads(args.threads)
    n, size = (2, 64) if args.quick else (16, 299)
    repeat = 3 if args.quick else args.repeat
    sync = lambda: None  # noqa: E731 - CPU only
    x = _images(n, size)
    xd = x.double()
    xn = xd.numpy()
    print(f"batch {n}x3x{size}x{size}, CPU, {torch.get_num_threads()} threads, paired rounds")

    # TVM against ART (ART times itself in its own process; ours: median of repeats)
    tvm = TVMDefense()  # ART's defaults: keep 0.3, lam 0.5, L2
    mask = tvm.draw_mask(x.shape, torch.Generator().manual_seed(0))
    t_tvm = interleaved(
        {"ours": lambda: tv_minimize(x, mask, lam=tvm.lam, norm=tvm.norm, steps=tvm.steps)},
        repeat,
        sync,
    )["ours"]
    use_art = not args.quick and Path(args.art_python).exists()
    settings = SimpleNamespace(p=tvm.p, norm=tvm.norm, lam=tvm.lam)
    if use_art:
        ref, t_ref = _real_art(args.art_python, xn, mask.double().numpy(), settings)
        name = "ART"
    else:
        ref, t_ref = _scipy_port(xn, mask.double().numpy(), tvm.lam, tvm.norm)
        name = "scipy port of ART (no ART venv)"
    z = tv_minimize(x, mask, lam=tvm.lam, norm=tvm.norm, steps=tvm.steps).double()
    md = mask.double()
    ratio = float(
        tv_objective(z, xd, md, lam=tvm.lam).sum()
        / tv_objective(torch.from_numpy(ref), xd, md, lam=tvm.lam).sum()
    )
    print(
        f"TVM: {name} {t_ref['wall']:.2f} s ({t_ref['wall'] / n:.3f} s/image), advsr "
        f"{t_tvm:.3f} s; objective advsr / {name}: {ratio:.3f}"
    )

    def scipy_median() -> None:
        for i in range(n):
            ndi.median_filter(xn[i], size=(1, 3, 3), mode="reflect")

    t_scipy, t_ours, med_speedup = paired(
        scipy_median, lambda: median_filter(xd, (3, 3)), repeat, sync
    )
    print(f"median 3x3 (float64): scipy {t_scipy:.3f} s, advsr {t_ours:.3f} s")

    hwc = xn.transpose(0, 2, 3, 1).copy()

    def sk_wavelet() -> None:
        for i in range(n):
            sk_denoise_wavelet(hwc[i], channel_axis=-1, method="BayesShrink", mode="soft")

    t_wav_ours, t_wav_sk, wav_ratio = paired(
        lambda: denoise_wavelet(xd, method="BayesShrink", mode="soft"), sk_wavelet, repeat, sync
    )
    print(f"wavelet (float64): skimage {t_wav_sk:.3f} s, advsr {t_wav_ours:.3f} s")

    y = (xd + 0.03 * torch.randn(xd.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    a, b = (xn * 255.0), (y.numpy() * 255.0)

    def sk_ssim_one(i: int) -> float:
        return float(
            structural_similarity(
                a[i],
                b[i],
                channel_axis=0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
            )
        )

    t_sk, t_fast, ssim_speedup = paired(
        lambda: [sk_ssim_one(i) for i in range(n)], lambda: ssim(xd, y), repeat, sync
    )
    t_f64 = interleaved({"f64": lambda: ssim(xd, y, precision="float64")}, 1, sync)["f64"]
    print(
        f"SSIM: skimage {t_sk:.3f} s, advsr fast (float32, default) "
        f"{t_fast:.3f} s, advsr float64 {t_f64:.3f} s"
    )
    ref_ssim = torch.tensor([sk_ssim_one(i) for i in range(n)], dtype=torch.float64)
    fast = ssim(xd, y)
    d_sk = float((fast - ref_ssim).abs().max())
    d_64 = float((fast - ssim(xd, y, precision="float64")).abs().max())
    print(f"SSIM max |advsr fast - skimage| {d_sk:.2e}, max |fast - float64| {d_64:.2e}")
    heads = per_image_224(args.quick, repeat)
    print(f"tvm_speedup_vs_art: {t_ref['wall'] / t_tvm:.1f}")
    print(f"median_speedup_vs_scipy: {med_speedup:.2f}")
    print(f"wavelet_time_ratio_vs_skimage: {wav_ratio:.2f}")
    print(f"ssim_speedup_vs_skimage: {ssim_speedup:.2f}")
    print("\n".join(heads))


if __name__ == "__main__":
    main()
