"""Agreement with torchattacks: PGD and MI-FGSM success on the same images and model.

torchattacks needs torchvision in its metadata but imports without it, so it lives in a
separate virtual environment installed with ``--no-deps`` (never in advsr's)::

    python3 -m venv /tmp/ta && /tmp/ta/bin/pip install torch==2.13.0
    /tmp/ta/bin/pip install --no-deps torchattacks
    /tmp/ta/bin/pip install numpy scipy safetensors

This script (run with advsr's Python) exports the classifier, normalisation included, as
TorchScript, runs torchattacks' PGD (no random start) and MI-FGSM in that environment on the
same images, and advsr's engine with the same settings (eps, step eps/4, 10 steps,
momentum 1.0; eps 1/255 by default, where success is not saturated), then compares success
counts and the per-image agreement.

Usage::

    python benchmarks/compare_torchattacks.py --weights resnet20-12fca82f.th \\
        --data ../shared/data/cifar10/test_jpeg --per-class 10 --ta-python /tmp/ta/bin/python

The last lines are ``pgd_success_diff: N`` and ``mifgsm_success_diff: N`` (images).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advsr.attacks.classifier import run_attack
from advsr.data.labelled import open_labelled
from advsr.io import load_state_dict, save_safetensors
from advsr.models.classifiers import create_classifier

HELPER = r"""
import sys, torch, torchattacks
from safetensors.torch import load_file, save_file
d = load_file(sys.argv[1]); model = torch.jit.load(sys.argv[2]).eval()
x, y = d["x"], d["y"]
eps = float(sys.argv[4]); alpha = eps / 4
out = {}
out["pgd"] = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=10, random_start=False)(x, y)
out["mifgsm"] = torchattacks.MIFGSM(model, eps=eps, alpha=alpha, steps=10, decay=1.0)(x, y)
save_file({k: v.contiguous() for k, v in out.items()}, sys.argv[3])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="official resnet20 .th file")
    ap.add_argument("--data", required=True, help="labelled folder (class folders)")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--ta-python", default="/tmp/ta/bin/python")
    ap.add_argument("--eps", type=float, default=1 / 255)
    args = ap.parse_args()
    data = open_labelled(args.data)
    picks = torch.cat([(data.y == c).nonzero()[: args.per_class, 0] for c in data.y.unique()])
    x, y = data.x[picks], data.y[picks]
    clf = create_classifier("resnet20-cifar10", args.weights)
    with torch.no_grad():
        keep = clf(x).argmax(1) == y  # attack the images the model gets right
    x, y = x[keep], y[keep]
    print(f"{len(y)} correctly classified images of {len(picks)}")
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
                str(args.eps),
            ],
            check=True,
        )
        theirs = load_state_dict(t / "out.safetensors")
    ours = {
        "pgd": run_attack(clf, x, y, eps=args.eps, steps=10, step_size=args.eps / 4).x_adv,
        "mifgsm": run_attack(
            clf, x, y, eps=args.eps, steps=10, step_size=args.eps / 4, momentum=1.0
        ).x_adv,
    }
    diffs = {}
    for name in ("pgd", "mifgsm"):
        with torch.no_grad():
            s_ours = clf(ours[name]).argmax(1) != y
            s_theirs = clf(theirs[name]).argmax(1) != y
        agree = int((s_ours == s_theirs).sum())
        diffs[name] = abs(int(s_ours.sum()) - int(s_theirs.sum()))
        print(
            f"{name}: advsr {int(s_ours.sum())}/{len(y)}, torchattacks "
            f"{int(s_theirs.sum())}/{len(y)}, same outcome on {agree}/{len(y)} images, "
            f"max |x_advsr - x_ta| {float((ours[name] - theirs[name]).abs().max()):.2e}"
        )
    print(f"pgd_success_diff: {diffs['pgd']}")
    print(f"mifgsm_success_diff: {diffs['mifgsm']}")


if __name__ == "__main__":
    main()
