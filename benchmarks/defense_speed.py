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

Candidates are timed in turns (median of ``--repeat``). Usage::

    python benchmarks/defense_speed.py [--quick] [--art-python /tmp/art/bin/python]

The last lines are ``tvm_speedup_vs_art``, ``median_speedup_vs_scipy``,
``wavelet_time_ratio_vs_skimage`` and ``ssim_speedup_vs_skimage``.
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
from advsr.defenses.tvm import TVMDefense, tv_minimize, tv_objective
from advsr.defenses.wavelet import denoise_wavelet
from advsr.devices import set_threads
from advsr.metrics import ssim
from benchmarks._timing import add_threads_option, interleaved, paired
from benchmarks.tvm_vs_art import _images, _real_art, _scipy_port


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
    print(f"tvm_speedup_vs_art: {t_ref['wall'] / t_tvm:.1f}")
    print(f"median_speedup_vs_scipy: {med_speedup:.2f}")
    print(f"wavelet_time_ratio_vs_skimage: {wav_ratio:.2f}")
    print(f"ssim_speedup_vs_skimage: {ssim_speedup:.2f}")


if __name__ == "__main__":
    main()
