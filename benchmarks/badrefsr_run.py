"""BadRefSR end to end: train a p = 0 baseline and poisoned RefSR models, evaluate them.

The validation run of issue 8 (the paper's Table 1 at one poisoning rate, and its Fig. 3
with ``--rates 0.1,0.2,0.3,0.4``), through the same commands a user runs:

1. ``advsr train-refsr`` once with ``--rate 0`` (the functionality baseline) and once per
   trigger x rate, every model with the same architecture, data, seed and steps;
2. ``advsr backdoor`` on all of them with the baseline, on the held-out tiles, writing an
   HTML report (Table 1 layout, the curves over p, image grids) and a JSON document.

Defaults are the CPU setting of the closing note: a small TTSR (16 features, 4 + (8, 2, 1)
residual blocks, LTE widths 16/32/32; ``--model corr-refsr``: 32 features, 2 + 8 blocks, 7 x
7 window), the embedded images cut into 64 x 64 HR tiles (``--tiles``, every 5th tile held
out for evaluation) with each Ref tile cut 16 px off its HR tile (``--ref-shift 16``: Ref
and HR overlap, so the clean task is SR, not copying; with ``--ref-shift 0`` the p = 0 model
copies the Ref at 47 dB and any backdoor costs many dB of it), batch 9, 4000 steps (about 41
min for a baseline and three poisoned models on 2 cores), Adam at 1e-3 with a cosine decay
to 0 (the paper's constant 1e-4 is too slow for a CPU budget; say so when quoting numbers),
per-sample loss weighting (the victim's own loop; ``--weighting part`` adds the clean and
backdoor means, eq. 5 read literally: it learns BadNets, and costs more clean PSNR). A p = 0
model is the same under either weighting, so one baseline serves both. Trainings run
``--jobs`` at a time (default 2, one CPU thread each on a 2-core machine). ``--paper``
switches to the paper's scale (160 x 160 HR, full TTSR widths, constant lr 1e-4) for a GPU.

Usage::

    python benchmarks/badrefsr_run.py --out runs/badrefsr [--triggers badnets,blend,filter]
        [--rates 0.2] [--runs filter@0.1,blend@0.3] [--steps 4000] [--device auto] [--paper]

Prints one line per trained model (seconds) and the result table; the total time last.
Models already trained with the same settings are reused (``--resume`` semantics).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CPU_ARCH = {  # small enough for a 2-core CPU; the LR-scale depth spans a 16 px LR image
    "ttsr": ["n_feats=16", "n_resblocks=4", "level_blocks=8,2,1", "lte_channels=16,32,32"],
    "corr-refsr": ["n_feats=32", "enc_blocks=2", "n_resblocks=8", "window=7"],
}


def _advsr() -> list[str]:
    return [sys.executable, "-m", "advsr"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for models and report")
    ap.add_argument("--triggers", default="badnets,blend,filter")
    ap.add_argument("--rates", default="0.2", help="comma-separated poisoning rates")
    ap.add_argument("--runs", help="comma-separated trigger@rate list instead of triggers x rates")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=9)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hr-size", type=int, default=64)
    ap.add_argument("--model", default="ttsr", choices=sorted(CPU_ARCH))
    ap.add_argument("--arch", action="append", help="KEY=VALUE, replaces the CPU setting")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--ref-shift", type=int, default=16, help="Ref tile offset (px); 0: Ref = HR tile"
    )
    ap.add_argument("--weighting", default="sample", choices=["sample", "part"])
    ap.add_argument("--paper", action="store_true", help="160 px HR, full model, lr 1e-4")
    ap.add_argument(
        "--jobs", type=int, default=2, help="trainings at once (CPU threads split between them)"
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    arch: list[str] = args.arch or ([] if args.paper else CPU_ARCH[args.model])
    hr, lr = ("160", "1e-4") if args.paper else (str(args.hr_size), str(args.lr))
    decay = "none" if args.paper else "cosine"
    common = [
        "--model", args.model, "--hr-size", hr, "--tiles", "--split", "train",
        "--steps", str(args.steps), "--batch", str(args.batch), "--lr", lr, "--lr-decay", decay,
        "--seed", str(args.seed), "--device", args.device, "--save-every", "250", "--resume",
        "--ref-shift", str(args.ref_shift), "--weighting", args.weighting,
    ]  # fmt: skip
    for a in arch:
        common += ["--arch", a]
    if args.runs:
        pairs = [tuple(x.rsplit("@", 1)) for x in args.runs.split(",")]
        if any(len(x) != 2 for x in pairs):
            ap.error("--runs expects trigger@rate items, e.g. filter@0.1,blend@0.2")
    else:
        pairs = [(t, r) for r in args.rates.split(",") for t in args.triggers.split(",")]
    runs = [("badnets", "0")] + [(str(t), str(r)) for t, r in pairs]
    t_all = time.perf_counter()
    files = {
        (t, r): args.out
        / (
            "baseline.safetensors"
            if r == "0"
            else f"{t.replace(':', '_')}_p{round(float(r) * 100)}.safetensors"
        )
        for t, r in runs
    }
    env = dict(os.environ)
    if args.device in ("auto", "cpu") and args.jobs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))

    def train(run: tuple[str, str]) -> int:
        trig, rate = run
        path = files[run]
        t0 = time.perf_counter()
        cmd = [*_advsr(), "train-refsr", "--out", str(path), *common]
        cmd += ["--trigger", trig, "--rate", rate, "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        doc = json.loads(done.stdout)
        losses = ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in (("clean loss", doc["clean_loss"]), ("backdoor loss", doc["backdoor_loss"]))
        )
        print(f"trained {path.stem}: {time.perf_counter() - t0:.0f} s, {losses}", flush=True)
        return 0

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = list(pool.map(train, runs))
    if any(codes):
        return max(codes)
    models = [str(p) for k, p in files.items() if k[1] != "0"]
    cmd = [*_advsr(), "backdoor", "--baseline", str(files[("badnets", "0")])]
    for m in models:
        cmd += ["--model-file", m]
    cmd += ["--device", args.device, "--report", str(args.out / "report.html"), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    (args.out / "backdoor.json").write_text(done.stdout)
    doc = json.loads(done.stdout)
    print("| " + " | ".join(doc["header"]) + " |")
    print("|" + "---|" * len(doc["header"]))
    for row in doc["rows"]:
        print("| " + " | ".join(row) + " |")
    for f in doc["flat_target"]:
        print(f"flat image of the mean colour of {f['target']}: {f['psnr']:.2f}/{f['ssim']:.3f}")
    print(f"report: {args.out / 'report.html'}")
    print(f"total_seconds: {time.perf_counter() - t_all:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
