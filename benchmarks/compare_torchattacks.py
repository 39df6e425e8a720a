"""Agreement with torchattacks: PGD, MI-FGSM, APGD, APGD-T and Square on the same images and
model.

torchattacks needs torchvision in its metadata but imports without it, so it lives in a
separate virtual environment installed with ``--no-deps`` (never in advsr's)::

    python3 -m venv /tmp/ta && /tmp/ta/bin/pip install torch==2.13.0
    /tmp/ta/bin/pip install --no-deps torchattacks
    /tmp/ta/bin/pip install numpy scipy safetensors requests

This script (run with advsr's Python) exports the classifier, normalisation included, as
TorchScript, runs torchattacks in that environment on the same correctly classified images,
and advsr's attacks with the same settings, then compares the robust accuracy (share of the
images each attack leaves correctly classified) and the per-image agreement:

* ``pgd``, ``mifgsm``: eps ``--small-eps`` (1/255 by default, where success is not
  saturated), step eps/4, 10 steps, no random start, MI-FGSM momentum 1.0 (deterministic:
  the adversarial images themselves should agree);
* ``apgd`` (CE), ``apgdt`` (targeted DLR, 9 targets), ``square`` (margin loss): eps
  ``--eps`` (8/255), ``--steps`` iterations (100), one restart, ``--queries`` (5000).
  These are random (start, squares): the robust accuracies, not the images, should agree.

Usage::

    python benchmarks/compare_torchattacks.py --weights resnet20-12fca82f.th \\
        --data ../shared/data/cifar10/test_jpeg --per-class 10 --ta-python /tmp/ta/bin/python

The last lines are ``<attack>_robust_accuracy_diff: X`` (percentage points, advsr minus
torchattacks) for each attack run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks import create_attack
from advsr.data.labelled import open_labelled
from advsr.io import load_state_dict, save_safetensors
from advsr.models.classifiers import create_classifier

HELPER = r"""
import json, sys, torch, torchattacks
from safetensors.torch import load_file, save_file
d = load_file(sys.argv[1]); model = torch.jit.load(sys.argv[2]).eval()
x, y = d["x"], d["y"]
cfg = json.loads(sys.argv[4])
small, eps = cfg["small_eps"], cfg["eps"]
make = {
    "pgd": lambda: torchattacks.PGD(model, eps=small, alpha=small / 4, steps=10,
                                    random_start=False),
    "mifgsm": lambda: torchattacks.MIFGSM(model, eps=small, alpha=small / 4, steps=10,
                                          decay=1.0),
    "apgd": lambda: torchattacks.APGD(model, norm="Linf", eps=eps, steps=cfg["steps"],
                                      n_restarts=1, loss="ce", rho=0.75, seed=0),
    "apgdt": lambda: torchattacks.APGDT(model, norm="Linf", eps=eps, steps=cfg["steps"],
                                        n_restarts=1, n_classes=cfg["classes"], rho=0.75,
                                        seed=0),
    "square": lambda: torchattacks.Square(model, norm="Linf", eps=eps,
                                          n_queries=cfg["queries"], n_restarts=1, p_init=0.8,
                                          loss="margin", resc_schedule=True, seed=0),
}
out = {name: make[name]()(x, y) for name in cfg["attacks"]}
save_file({k: v.contiguous() for k, v in out.items()}, sys.argv[3])
"""


def _ours(name: str, args: argparse.Namespace, clf, x, y) -> torch.Tensor:  # type: ignore[no-untyped-def]
    small, eps = args.small_eps, args.eps
    spec = {
        "pgd": ("ifgsm", small, {"steps": 10, "step_size": small / 4}),
        "mifgsm": ("mi-fgsm", small, {"steps": 10, "step_size": small / 4, "momentum": 1.0}),
        "apgd": ("apgd", eps, {"steps": args.steps, "loss": "ce"}),
        "apgdt": ("apgd-t", eps, {"steps": args.steps, "targets": 9}),
        "square": ("square", eps, {"queries": args.queries}),
    }[name]
    attack = create_attack(spec[0], eps=spec[1], **spec[2])
    return attack(clf, x, y, generator=torch.Generator().manual_seed(0)).x_adv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="official resnet20 .th file")
    ap.add_argument("--data", required=True, help="labelled folder (class folders)")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--ta-python", default="/tmp/ta/bin/python")
    ap.add_argument("--small-eps", type=float, default=1 / 255)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--attacks", default="pgd,mifgsm,apgd,apgdt,square")
    args = ap.parse_args()
    names = [a for a in args.attacks.split(",") if a]
    data = open_labelled(args.data)
    picks = torch.cat([(data.y == c).nonzero()[: args.per_class, 0] for c in data.y.unique()])
    x, y = data.x[picks], data.y[picks]
    clf = create_classifier("resnet20-cifar10", args.weights)
    with torch.no_grad():
        keep = clf(x).argmax(1) == y  # attack the images the model gets right
    x, y = x[keep], y[keep]
    n = len(y)
    print(f"{n} correctly classified images of {len(picks)}")
    cfg = {
        "attacks": names,
        "small_eps": args.small_eps,
        "eps": args.eps,
        "steps": args.steps,
        "queries": args.queries,
        "classes": 10,
    }
    import json

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        save_safetensors(t / "data.safetensors", {"x": x, "y": y})
        torch.jit.trace(clf, x[:2], check_trace=False).save(str(t / "model.pt"))
        (t / "helper.py").write_text(HELPER)
        subprocess.run(
            [
                args.ta_python,
                str(t / "helper.py"),
                str(t / "data.safetensors"),
                str(t / "model.pt"),
                str(t / "out.safetensors"),
                json.dumps(cfg),
            ],
            check=True,
        )
        theirs = load_state_dict(t / "out.safetensors")
    diffs = {}
    for name in names:
        mine = _ours(name, args, clf, x, y)
        with torch.no_grad():
            r_ours = clf(mine).argmax(1) == y
            r_theirs = clf(theirs[name]).argmax(1) == y
        agree = int((r_ours == r_theirs).sum())
        a_ours, a_theirs = 100 * float(r_ours.float().mean()), 100 * float(r_theirs.float().mean())
        diffs[name] = a_ours - a_theirs
        print(
            f"{name}: robust accuracy advsr {a_ours:.1f}%, torchattacks {a_theirs:.1f}%, same "
            f"outcome on {agree}/{n} images, max |x_advsr - x_ta| "
            f"{float((mine - theirs[name]).abs().max()):.2e}"
        )
    for name in names:
        print(f"{name}_robust_accuracy_diff: {diffs[name]:+.1f}")


if __name__ == "__main__":
    main()
