"""The SR defense at ImageNet size: peak memory, probe cost and the adaptive cell's overhead.

Runs ``advsr defend`` cells (EfficientNet-Lite0 on 224 px images, the SR defense
``sr:model=imdn,scale=2,weights=FILE`` when ``--weights`` gives IMDN x2, else the bundled
``sr:model=demo-edsr,scale=2``), each in a fresh child process so that its peak resident
memory (``resource.getrusage``) is its own:

* the non-adaptive and the adaptive I-FGSM-16 cell at the default batch size (64), and the
  adaptive cell at batch 8 and 32 (peak memory must not grow with the batch);
* in the adaptive cell's child, one forward+backward of ``classifier o defense`` on the same
  images in micro-batches within ``--max-memory`` (:func:`advsr.memory.value_and_grad`: one
  forward and one backward per image, the least a gradient step can cost), so that
  ``adaptive_limit_ratio`` = adaptive cell time / (steps x EOT x that pass) says what the
  cell costs beyond its gradient steps;
* ``probe_time_share``: the gradient-masking probes' share of the cells' time (rows'
  ``probe_seconds``; NaN for code that does not record it).

Usage::

    python benchmarks/defend_scale.py --data DIR [--weights IMDN_x2.pth] [--images 64]
        [--steps 10] [--threads 1] [--quick]

DIR holds ImageNet JPEGs (wnid-prefixed names or class folders); without it, the eight
photographs scikit-image embeds, labelled by EfficientNet-Lite0's own clean predictions.
The last lines are ``defend_peak_rss_gb``, ``probe_time_share`` and
``adaptive_limit_ratio``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._timing import add_threads_option

MODEL = "efficientnet-lite0-imagenet"


def _child(spec: dict) -> dict:
    """One defend cell (and, for adaptive cells, the reference pass) in this process."""
    import torch
    import torch.nn.functional as F

    from advsr.devices import set_threads
    from advsr.engine.driver import run_cells
    from advsr.engine.store import ResultStore

    set_threads(spec["threads"])
    if not spec.get("keep_malloc"):  # as the command line does
        from advsr.memory import return_freed_memory

        return_freed_memory()
    cfg = dict(spec["cell"])
    t0 = time.perf_counter()
    (run,) = run_cells([("defend", cfg)], ResultStore(":memory:"), progress=False)
    seconds = time.perf_counter() - t0
    rows = run.rows
    out = {
        "seconds": seconds,
        "rows": len(rows),
        "probe_seconds": sum(float(r.get("probe_seconds", math.nan)) for r in rows),
        "row_seconds": sum(float(r.get("seconds", 0.0) or 0.0) for r in rows),
    }
    if spec.get("reference"):
        from advsr.defenses.adaptive import adaptive, defend
        from advsr.engine.context import Context
        from advsr.experiments.defend import DefendConfig, select_correct
        from advsr.memory import value_and_grad

        dcfg = DefendConfig(**cfg)
        ctx = Context()
        data, _ = select_correct(dcfg, ctx)
        model = ctx.classifier(dcfg.model, dcfg.weights, torch.device("cpu"))
        defense = ctx.defense(dcfg.defense, torch.device("cpu"))
        target = defend(model, adaptive(defense, dcfg.eot)).eval()
        x, y = data.x[: dcfg.batch_size], data.y[: dcfg.batch_size]

        def ce(z: torch.Tensor, rows: slice) -> torch.Tensor:
            return F.cross_entropy(z, y[rows], reduction="none")

        def pass_() -> None:  # one forward and one backward per micro-batch
            value_and_grad(target, x, ce)

        pass_()  # warm-up
        times = []
        for _ in range(spec.get("repeat", 2)):
            t1 = time.perf_counter()
            pass_()
            times.append(time.perf_counter() - t1)
        out["pass_seconds"] = min(times)
        out["pass_images"] = int(x.shape[0])
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _run_child(spec: dict, env: dict[str, str]) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:  # e.g. -9: killed by the kernel's out-of-memory killer
        sys.stderr.write(res.stderr[-2000:])
        print(f"child failed ({res.returncode}): {spec['cell']}", flush=True)
        return {"failed": res.returncode}
    out: dict = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _sample_folder(root: Path) -> str:
    """The embedded photographs at 224 px, named by EfficientNet-Lite0's clean prediction."""
    import torch

    from advsr.data.imagenet import resize_center_crop
    from advsr.data.samples import sample_paths
    from advsr.io import read_image, write_image
    from advsr.models.classifiers import create_classifier

    model = create_classifier(MODEL)
    for name, path in sample_paths().items():
        x = resize_center_crop(read_image(path), 224)
        with torch.no_grad():
            label = int(model(x).argmax(1))
        write_image(root / f"{name}_{label}.png", x)
    return str(root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help="ImageNet JPEG folder")
    ap.add_argument("--weights", default=None, help="IMDN x2 weights (else demo-edsr)")
    ap.add_argument("--images", type=int, default=64, help="images of the first two cells")
    ap.add_argument("--batch", type=int, default=64, help="their batch size (default: 64)")
    ap.add_argument("--steps", type=int, default=10, help="I-FGSM steps")
    ap.add_argument("--batches", default="8,32", help="extra adaptive batch sizes")
    ap.add_argument("--quick", action="store_true")
    add_threads_option(ap)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(_child(json.loads(args.child))))
        return
    env = {**os.environ, "ADVSR_PROGRESS": "0"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    tmp = tempfile.TemporaryDirectory()
    data = args.data or _sample_folder(Path(tmp.name))
    defense = (
        f"sr:model=imdn,scale=2,weights={args.weights}"
        if args.weights
        else "sr:model=demo-edsr,scale=2"
    )
    images, steps, batches = args.images, args.steps, [int(b) for b in args.batches.split(",") if b]
    if args.quick:
        images, steps, batches = 2, 1, []
    base = {
        "model": MODEL,
        "data": data,
        "limit": images,
        "defense": defense,
        "attack": "ifgsm@16/255",
        "steps": steps,
        "batch_size": args.batch,
    }
    runs = {}
    for mode in ("non-adaptive", "adaptive"):
        spec = {"threads": args.threads, "cell": {**base, "mode": mode}}
        spec["reference"] = mode == "adaptive"
        runs[mode] = _run_child(spec, env)
        print(f"{mode} batch {args.batch}: {json.dumps(runs[mode])}", flush=True)
    for b in batches:
        cell = {**base, "mode": "adaptive", "limit": b, "batch_size": b}
        runs[f"adaptive-b{b}"] = _run_child({"threads": args.threads, "cell": cell}, env)
        print(f"adaptive batch {b}: {json.dumps(runs[f'adaptive-b{b}'])}", flush=True)
    ok = {k: r for k, r in runs.items() if "failed" not in r}
    ad = runs["adaptive"]
    limit = math.nan
    if "failed" not in ad:
        n_batches = math.ceil(ad["rows"] / args.batch)
        limit = ad["seconds"] / (steps * 1 * ad["pass_seconds"] * n_batches)
    probe = sum(r["probe_seconds"] for r in ok.values()) / max(
        sum(r["row_seconds"] for r in ok.values()), 1e-9
    )
    print(f"defense: {defense}; images: {images}; steps: {steps}; batch: {args.batch}")
    for k, r in runs.items():
        peak = "killed" if "failed" in r else f"{r['peak_rss_gb']:.2f}"
        print(f"peak_rss_gb[{k}]: {peak}")
    worst = max((r["peak_rss_gb"] for r in ok.values()), default=math.nan)
    print(f"defend_peak_rss_gb: {math.inf if len(ok) < len(runs) else worst:.2f}")
    print(f"probe_time_share: {probe:.3f}")
    print(f"adaptive_limit_ratio: {limit:.3f}")


if __name__ == "__main__":
    main()
