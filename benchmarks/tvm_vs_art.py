"""TVM defense: advsr's batched primal-dual solver against ART's ``TotalVarMin``.

A batch of ``--batch`` (16) images of 3 x 299 x 299 (crops of scikit-image's astronaut,
chelsea and coffee, resized, plus Gaussian noise sd 0.02) and one Bernoulli(``--p``) keep-mask
per pixel and channel (drawn by :class:`advsr.defenses.tvm.TVMDefense`). The same images and
masks go through

* advsr: ``tv_minimize`` on the whole batch (ART's objective, ``--steps`` primal-dual steps,
  float32, torch's threads);
* ART (``--art-python``, a venv holding ``adversarial-robustness-toolbox`` without torch):
  ``TotalVarMin(prob, norm, lamb)._minimize(x_i, mask_i)`` image by image (its ``__call__``
  draws its own mask, then runs exactly this), L-BFGS-B with ``max_iter = 10``, in a
  subprocess timed there.

Both results are scored with the same objective (``tv_objective``, summed over images and
channels); ``channels_not_worse`` counts the channels where ours is <= ART's. The wall and
CPU times of both are printed (the machine may be shared: the CPU-time ratio is the steadier
one; advsr's time is the median of ``--repeat`` runs taken before and after ART's).

``--quick``: 4 images of 3 x 64 x 64 and no ART: the reference is a port of ART's procedure
(scipy L-BFGS-B, 10 iterations, ART's gradient) in this process, and the last line compares
to that port instead (say so when quoting it).

Usage::

    python benchmarks/tvm_vs_art.py [--quick] [--art-python /tmp/art/bin/python]
        [--batch 16] [--size 299] [--p 0.3] [--lam 0.5] [--norm 2] [--steps 20]

The last lines are ``tvm_objective_ratio_vs_art: X`` (ours / ART's, <= 1 is better) and
``tvm_speedup_vs_art: X`` (ART's wall time / ours).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.defenses.tvm import TVMDefense, tv_minimize, tv_objective

# Run inside the ART venv (numpy, scipy, ART; no torch): argv = npz in, npz out.
ART_HELPER = r"""
import json, sys, time
import numpy as np
from art.defences.preprocessor import TotalVarMin
d = np.load(sys.argv[1]); x, mask = d["x"], d["mask"]  # (N, H, W, C), ART's layout
p, norm, lam = float(d["p"]), int(d["norm"]), float(d["lam"])
tvm = TotalVarMin(prob=p, norm=norm, lamb=lam, max_iter=10)
out = np.empty_like(x)
t0, c0 = time.perf_counter(), time.process_time()
for i in range(len(x)):
    out[i] = tvm._minimize(x[i], mask[i])
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
np.save(sys.argv[2], out)
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def _images(n: int, size: int) -> torch.Tensor:
    """``n`` noisy crops of three scikit-image photos, ``(n, 3, size, size)`` float32."""
    from skimage import data, transform

    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    out = []
    for i in range(n):
        im = photos[i % 3][..., :3] / 255.0
        h, w = im.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = transform.resize(im[top : top + side, left : left + side], (size, size))
        out.append(np.clip(crop + rng.normal(0.0, 0.02, crop.shape), 0.0, 1.0))
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2)).float().contiguous()


def _port_objective(zf: np.ndarray, x: np.ndarray, m: np.ndarray, lam: float, p: int) -> float:
    z = zf.reshape(x.shape)
    rows = np.linalg.norm(z[1:] - z[:-1], p, axis=1).sum()
    cols = np.linalg.norm(z[:, 1:] - z[:, :-1], p, axis=0).sum()
    return float(np.sqrt(np.sum(m * (z - x) ** 2)) + lam * (rows + cols))


def _port_gradient(zf: np.ndarray, x: np.ndarray, m: np.ndarray, lam: float, p: int):
    """ART's ``_deri_loss_func`` (including its factor ``p`` on the p = 2 TV gradient)."""
    z = zf.reshape(x.shape)
    g = m * (z - x) / max(np.sqrt(np.sum(m * (z - x) ** 2)), 1e-6)
    dr, dc = z[1:] - z[:-1], z[:, 1:] - z[:, :-1]
    if p == 1:
        a, b = np.sign(dr), np.sign(dc)
    else:
        a = p * dr / np.maximum(np.linalg.norm(dr, axis=1), 1e-6)[:, None]
        b = p * dc / np.maximum(np.linalg.norm(dc, axis=0), 1e-6)[None, :]
    tv = np.zeros_like(z)
    tv[:-1] -= a
    tv[1:] += a
    tv[:, :-1] -= b
    tv[:, 1:] += b
    return (g + lam * tv).ravel()


def _scipy_port(x: np.ndarray, mask: np.ndarray, lam: float, p: int) -> tuple[np.ndarray, dict]:
    """ART's procedure re-implemented with scipy, on ``(N, C, H, W)``."""
    from scipy.optimize import minimize

    out = x.copy()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            xk, mk = x[i, k], mask[i, k]
            res = minimize(
                _port_objective,
                xk.ravel().copy(),
                (xk, mk, lam, p),
                method="L-BFGS-B",
                jac=_port_gradient,
                options={"maxiter": 10},
            )
            out[i, k] = res.x.reshape(xk.shape)
    return out, {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def _real_art(art_python: str, x: np.ndarray, mask: np.ndarray, args) -> tuple[np.ndarray, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        np.savez(
            t / "in.npz",
            x=x.transpose(0, 2, 3, 1).astype(np.float32),
            mask=mask.transpose(0, 2, 3, 1).astype(np.int64),
            p=args.p,
            norm=args.norm,
            lam=args.lam,
        )
        (t / "helper.py").write_text(ART_HELPER)
        res = subprocess.run(
            [art_python, str(t / "helper.py"), str(t / "in.npz"), str(t / "out.npy")],
            check=True,
            capture_output=True,
            text=True,
        )
        out = np.load(t / "out.npy").transpose(0, 3, 1, 2)
    return out, json.loads(res.stdout.strip().splitlines()[-1])


def _time_ours(fn, repeat: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--art-python", default="/tmp/art/bin/python")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=299)
    ap.add_argument("--p", type=float, default=0.3)
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--norm", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, size = (4, 64) if args.quick else (args.batch, args.size)
    repeat = 2 if args.quick else args.repeat
    use_art = not args.quick and Path(args.art_python).exists()
    x = _images(n, size)
    defense = TVMDefense(p=args.p, lam=args.lam, norm=args.norm, steps=args.steps)
    mask = defense.draw_mask(x.shape, torch.Generator().manual_seed(0))
    print(
        f"TVM p={args.p} lam={args.lam} norm={args.norm}: batch {n}x3x{size}x{size}, "
        f"advsr {args.steps} primal-dual steps (float32, {torch.get_num_threads()} threads) "
        f"vs ART L-BFGS-B max_iter=10 (float64, per image and channel)"
    )

    def ours() -> torch.Tensor:
        return tv_minimize(x, mask, lam=args.lam, norm=args.norm, steps=args.steps)

    ours()  # warm-up
    walls, cpus = _time_ours(ours, repeat)
    x_np, m_np = x.double().numpy(), mask.double().numpy()
    if use_art:
        ref, t_ref = _real_art(args.art_python, x_np, m_np, args)
        ref_name = "ART"
    else:
        if not args.quick:
            print(f"no ART venv at {args.art_python}: comparing to the scipy port of ART")
        ref, t_ref = _scipy_port(x_np, m_np, args.lam, args.norm)
        ref_name = "scipy port of ART"
    w2, c2 = _time_ours(ours, repeat)
    walls, cpus = walls + w2, cpus + c2
    t_wall, t_cpu = statistics.median(walls), statistics.median(cpus)

    z = ours().double()
    xd, md = x.double(), mask.double()
    f_x = tv_objective(xd, xd, md, lam=args.lam, norm=args.norm)
    f_ours = tv_objective(z, xd, md, lam=args.lam, norm=args.norm)
    f_ref = tv_objective(torch.from_numpy(ref), xd, md, lam=args.lam, norm=args.norm)
    not_worse = int((f_ours <= f_ref).sum())
    print(
        f"objective (sum over {n}x3 channels): input {f_x.sum():.2f}, {ref_name} "
        f"{f_ref.sum():.2f}, advsr {f_ours.sum():.2f}; channels_not_worse {not_worse}/{3 * n}; "
        f"worst channel ratio {(f_ours / f_ref).max():.3f}"
    )
    ref_t = torch.from_numpy(ref)
    print(
        f"mean |z - x|: {ref_name} {(ref_t - xd).abs().mean():.4f}, advsr "
        f"{(z - xd).abs().mean():.4f} (the objective favours flat images at large lam)"
    )
    print(
        f"{ref_name}: wall {t_ref['wall']:.2f} s ({t_ref['wall'] / n:.3f} s/image), "
        f"cpu {t_ref['cpu']:.2f} s; advsr: wall {t_wall:.3f} s, cpu {t_cpu:.3f} s "
        f"(median of {len(walls)})"
    )
    print(f"tvm_cpu_speedup_vs_art: {t_ref['cpu'] / t_cpu:.1f}")
    if not use_art:
        print("(the two lines below compare to the scipy port of ART, not to ART itself)")
    print(f"tvm_objective_ratio_vs_art: {float(f_ours.sum() / f_ref.sum()):.3f}")
    print(f"tvm_speedup_vs_art: {t_ref['wall'] / t_wall:.1f}")


if __name__ == "__main__":
    main()
