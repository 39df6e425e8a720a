"""Classifier attack speed: PGD-10 against 10 bare passes, DeepFool batched against a loop.

* ``pgd_limit_ratio``: time of PGD with 10 steps (``advsr``'s ``pgd``: random start, budget
  enforcement; success is measured lazily, so not here) divided by 10 x the time of one
  forward+backward of the cross-entropy w.r.t. the input, same model and batch, in paired
  rounds in the same run (the median of the per-round ratios, ``benchmarks/_timing.paired``;
  target <= 1.02: the loop should cost nothing but its passes).
* with ``--ta-python`` (a venv holding torchattacks, see ``compare_torchattacks.py``): the
  same ratio for torchattacks' PGD and advsr's PGD divided by torchattacks' PGD, timed in
  turns in one process on the same TorchScript model (``pgd_ratio_vs_torchattacks``).
* ``deepfool_batch_speedup``: DeepFool on a batch of images in one call vs the same code
  called image by image. For scale, ``jacobian_batch_speedup`` is the same ratio for the
  bare passes DeepFool is made of (one forward and one backward per class, batch of N vs N
  batches of 1): on a small CPU this batch efficiency of the model itself bounds the gain.

Model: the official CIFAR-10 ResNet-20 when ``--weights`` is given, else the same
architecture with random weights; images: the first ``--batch`` of ``--data`` (a labelled
folder, default the shared CIFAR-10 JPEG test set when it is there), else random.

Usage::

    python benchmarks/attack_speed.py [--quick] [--device cpu|cuda] [--weights resnet20.th]
        [--data DIR] [--ta-python /tmp/ta/bin/python]

The last lines are ``pgd_limit_ratio: X`` and ``deepfool_batch_speedup: X``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks import create_attack
from advsr.attacks.minimal import deepfool
from advsr.data.labelled import open_labelled
from advsr.devices import set_threads
from advsr.io import save_safetensors
from advsr.models.classifiers import create_classifier
from benchmarks._timing import add_threads_option, paired

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10" / "test_jpeg"

# Run inside the torchattacks venv: advsr's attack modules need only torch.
TA_HELPER = r"""
import json, sys, torch, torch.nn.functional as F, torchattacks
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from safetensors.torch import load_file
from advsr.attacks import create_attack
from benchmarks._timing import interleaved
d = load_file(sys.argv[1]); model = torch.jit.load(sys.argv[2]).eval()
x, y = d["x"], d["y"]; repeat = int(sys.argv[5]); eps = 8 / 255
ta = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True)
def one_pass():
    xr = x.clone().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="none").sum(), xr)
t = interleaved({
    "pass": one_pass,
    "ta": lambda: ta(x, y),
    "advsr": lambda: create_attack("pgd", eps=eps, steps=10)(model, x, y,
                                                           generator=torch.Generator()).x_adv,
}, repeat, lambda: None)
print(json.dumps(t))
"""


def _images(args: argparse.Namespace, n: int) -> torch.Tensor:
    data = Path(args.data) if args.data else DEFAULT_DATA
    if data.is_dir():
        return open_labelled(str(data), limit=n).x
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _jacobian_pass(clf: torch.nn.Module, x: torch.Tensor) -> None:
    xr = x.clone().requires_grad_(True)
    z = clf(xr)
    for j in range(z.shape[1]):
        torch.autograd.grad(z[:, j].sum(), xr, retain_graph=j < z.shape[1] - 1)


def _vs_torchattacks(args: argparse.Namespace, clf: torch.nn.Module, x, y) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        save_safetensors(t / "data.safetensors", {"x": x.cpu(), "y": y.cpu()})
        with warnings.catch_warnings():  # the wrapper's input checks become constants
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(clf.cpu(), x[:2].cpu(), check_trace=False)
        traced.save(str(t / "model.pt"))
        (t / "helper.py").write_text(TA_HELPER)
        out = subprocess.run(
            [
                args.ta_python,
                str(t / "helper.py"),
                str(t / "data.safetensors"),
                str(t / "model.pt"),
                str(REPO / "src"),
                str(REPO),
                str(args.repeat),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compile_vs_eager(
    clf: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeat: int, sync: Any
) -> None:
    """torch.compile vs eager: PGD-10 on ResNet-20 and the basic SR attack (T = 10) on
    CARN-M x4 (random weights, 2 LR images of 48 px), paired rounds; the compile time and
    the largest gradient difference are printed too."""
    import time

    from advsr.attacks import basic_attack, sr_deviation, sr_reference
    from advsr.models.compiled import compile_model
    from advsr.models.sr import create_sr_model

    def grad(model: torch.nn.Module, objective: Any, inp: torch.Tensor) -> torch.Tensor:
        xr = inp.clone().requires_grad_(True)
        return torch.autograd.grad(objective(model, xr).sum(), xr)[0]

    torch.manual_seed(0)
    sr = create_sr_model("carn-m", 4).to(x.device).eval()
    lr = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1)).to(x.device)
    ref = sr_reference(sr, lr, "clean-8bit")
    cases = {
        "pgd_resnet20": (
            clf,
            x,
            lambda m, xr: F.cross_entropy(m(xr), y, reduction="none"),
            lambda m: create_attack("pgd@8/255", steps=10)(m, x, y, generator=torch.Generator()),
        ),
        "basic_carnm_x4": (
            sr,
            lr,
            lambda m, xr: sr_deviation(m, ref)(xr),
            lambda m: basic_attack(m, lr, eps=8 / 255, steps=10),
        ),
    }
    for name, (model, inp, objective, attack) in cases.items():
        comp = compile_model(model)
        t0 = time.perf_counter()
        attack(comp)
        sync()
        first = time.perf_counter() - t0
        diff = (grad(comp, objective, inp) - grad(model, objective, inp)).abs().max()
        t_eager, t_comp, speedup = paired(
            lambda a=attack, m=model: a(m), lambda a=attack, c=comp: a(c), repeat, sync
        )
        print(
            f"{name}: eager {t_eager * 1e3:.1f} ms, compiled {t_comp * 1e3:.1f} ms, first "
            f"compiled call {first:.1f} s, max |grad compiled - eager| {float(diff):.2e}"
            + (f", fell back: {comp.failed}" if getattr(comp, "failed", None) else "")
        )
        print(f"compile_speedup_vs_eager_{name}: {speedup:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--ta-python", default=None)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile against eager")
    add_threads_option(ap)
    args = ap.parse_args()
    set_threads(args.threads)
    dev = torch.device(args.device)
    n = 8 if args.quick else args.batch
    repeat = 3 if args.quick else args.repeat
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    clf = create_classifier("resnet20-cifar10", args.weights).to(dev).eval()
    x = _images(args, n).to(dev)
    with torch.no_grad():
        y = clf(x).argmax(1)
    print(f"ResNet-20, batch {n}x3x32x32, device {dev}, threads {torch.get_num_threads()}")

    def one_pass() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(clf(xr), y, reduction="none").sum(), xr)

    def pgd() -> None:
        create_attack("pgd@8/255", steps=10)(clf, x, y, generator=torch.Generator())

    t_pgd, t_pass, ratio = paired(pgd, one_pass, repeat, sync, scale=10)
    print(f"PGD-10 {t_pgd * 1e3:.1f} ms, 10 x forward+backward {10 * t_pass * 1e3:.1f} ms")
    if args.ta_python:
        ta = _vs_torchattacks(args, clf, x, y)
        clf.to(dev)
        print(
            f"TorchScript model, CPU: torchattacks PGD-10 {ta['ta'] * 1e3:.1f} ms "
            f"(ratio {ta['ta'] / (10 * ta['pass']):.3f}), advsr PGD-10 {ta['advsr'] * 1e3:.1f} "
            f"ms (ratio {ta['advsr'] / (10 * ta['pass']):.3f})"
        )
        print(f"pgd_ratio_vs_torchattacks: {ta['advsr'] / ta['ta']:.3f}")

    single = [lambda i=i: _jacobian_pass(clf, x[i : i + 1]) for i in range(n)]
    _, _, jac_speedup = paired(
        lambda: [f() for f in single], lambda: _jacobian_pass(clf, x), repeat, sync
    )
    t_loop, t_batch, df_speedup = paired(
        lambda: [deepfool(clf, x[i : i + 1], y[i : i + 1]) for i in range(n)],
        lambda: deepfool(clf, x, y),
        repeat,
        sync,
    )
    if args.compile:
        _compile_vs_eager(clf, x, y, repeat, sync)
    print(f"DeepFool batched {t_batch * 1e3:.1f} ms, per-image loop {t_loop * 1e3:.1f} ms")
    print(f"jacobian_batch_speedup: {jac_speedup:.2f}")
    print(f"pgd_limit_ratio: {ratio:.3f}")
    print(f"deepfool_batch_speedup: {df_speedup:.2f}")


if __name__ == "__main__":
    main()
