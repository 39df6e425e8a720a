"""``advsr demo``: the main job on the embedded data, end to end.

1. fidelity of bicubic and the bundled demo models (x2, x4) on ``samples``;
2. the basic attack (Choi et al. 2019) at alpha in {1, 2, 4, 8, 16}/255, T = 50, x4, on each
   model: the paper's tables (rows alpha, columns model) of LR PSNR and SR PSNR;
3. a transferability matrix at 8/255;
4. an HTML report with the tables and, for one held-out image, the original and attacked LR,
   the amplified perturbation, and the clean and attacked SR outputs.

Everything is stored in the result store (re-runs read finished cells back). ``quick`` runs
the same code on small crops with fewer steps and budgets (the test suite's smoke run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advsr.attacks.sr import basic_attack
from advsr.data import open_dataset
from advsr.experiments.run import run_spec
from advsr.experiments.spec import ExperimentSpec
from advsr.experiments.store import ResultStore
from advsr.experiments.transfer_sr import transfer_matrix, transfer_sr
from advsr.models.sr import bundled_training, create_sr_model
from advsr.report import Figure, ReportTable, write_report

__all__ = ["DEMO_MODELS", "DemoSettings", "run_demo"]

DEMO_MODELS = ("bicubic", "demo-edsr", "demo-carn-m")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs (full or quick)."""

    alphas: tuple[int, ...]  # in 1/255 units
    steps: int
    hr_crop: int | None  # attack crops (HR pixels); fidelity always runs on full images
    fidelity_crop: int | None

    @classmethod
    def make(cls, quick: bool) -> DemoSettings:
        if quick:
            return cls(alphas=(2, 8), steps=5, hr_crop=48, fidelity_crop=96)
        return cls(alphas=(1, 2, 4, 8, 16), steps=50, hr_crop=128, fidelity_crop=None)


def _label(a: int) -> str:
    return f"{a}/255"


def run_demo(
    store: ResultStore, *, quick: bool = False, device: str = "auto", report: Path | None = None
) -> dict[str, Any]:
    """Run the demo; returns one JSON-ready document (see the module docstring)."""
    s = DemoSettings.make(quick)
    models = list(DEMO_MODELS)
    held_out = sorted(
        {n for m in models[1:] for sc in (2, 4) for n in bundled_training(m, sc).get("holdout", [])}
    )
    fid_runs = run_spec(
        ExperimentSpec(
            experiment="eval-sr",
            grid={"scale": [2, 4], "model": models},
            settings={"data": "samples", "device": device, "hr_crop": s.fidelity_crop},
        ),
        store,
    )
    fidelity: dict[str, dict[str, dict[str, float]]] = {}
    for r in fid_runs:
        rows = [x for x in r.rows if x["image"] in held_out]
        fidelity.setdefault(r.config["model"], {})[f"x{r.config['scale']}"] = {
            "psnr_all": r.mean["psnr"],
            "psnr_held_out": sum(x["psnr"] for x in rows) / max(len(rows), 1),
        }
    atk_runs = run_spec(
        ExperimentSpec(
            experiment="attack-sr",
            grid={"model": models, "alpha": [a / 255 for a in s.alphas]},
            settings={
                "data": "samples",
                "scale": 4,
                "steps": s.steps,
                "hr_crop": s.hr_crop,
                "device": device,
            },
        ),
        store,
    )
    lr: dict[str, dict[str, float]] = {m: {} for m in models}
    sr: dict[str, dict[str, float]] = {m: {} for m in models}
    for r in atk_runs:
        label = _label(round(r.config["alpha"] * 255))
        lr[r.config["model"]][label] = r.mean["lr_psnr"]
        sr[r.config["model"]][label] = r.mean["sr_psnr"]
    transfer_runs = {
        src: transfer_sr(
            {
                "source": src,
                "targets": models,
                "data": "samples",
                "scale": 4,
                "alpha": 8 / 255,
                "steps": s.steps,
                "hr_crop": s.hr_crop,
                "device": device,
            },
            store,
        )
        for src in models
    }
    doc: dict[str, Any] = {
        "demo": "SR attacks on the bundled models and bicubic (samples, x4)",
        "quick": quick,
        "held_out": held_out,
        "fidelity": fidelity,
        "attack": {
            "alphas": [_label(a) for a in s.alphas],
            "steps": s.steps,
            "hr_crop": s.hr_crop,
            "lr_psnr": lr,
            "sr_psnr": sr,
        },
        "transfer": {
            "alpha": "8/255",
            "sources": models,
            "targets": models,
            "matrix": transfer_matrix(transfer_runs, models),
        },
        "fidelity_runs": [r.__dict__ for r in fid_runs],
    }
    if report is not None:
        doc["report"] = str(_write(report, doc, s, device))
    return doc


def _tables(doc: dict[str, Any]) -> list[ReportTable]:
    models = list(DEMO_MODELS)
    alphas = doc["attack"]["alphas"]
    out = [
        ReportTable(
            f"{kind} PSNR (dB, RGB) under the basic attack, x4, T = {doc['attack']['steps']}",
            ["alpha", *models],
            [[a, *(f"{doc['attack'][key][m][a]:.2f}" for m in models)] for a in alphas],
        )
        for kind, key in (("LR", "lr_psnr"), ("SR", "sr_psnr"))
    ]
    t = doc["transfer"]
    out.append(
        ReportTable(
            f"Transferability at {t['alpha']}: SR PSNR on the target (rows: attacked model)",
            ["source \\ target", *t["targets"]],
            [
                [src, *(f"{v:.2f}" for v in row)]
                for src, row in zip(t["sources"], t["matrix"], strict=True)
            ],
        )
    )
    out.append(
        ReportTable(
            "Clean fidelity: Y-PSNR (dB) vs HR, mean over all images / held-out images",
            ["model", "x2 all", "x2 held out", "x4 all", "x4 held out"],
            [
                [
                    m,
                    *(
                        f"{doc['fidelity'][m][sc][k]:.2f}"
                        for sc in ("x2", "x4")
                        for k in ("psnr_all", "psnr_held_out")
                    ),
                ]
                for m in models
            ],
        )
    )
    return out


def _write(path: Path, doc: dict[str, Any], s: DemoSettings, device: str) -> Path:
    from advsr.devices import resolve_device

    dev = resolve_device(device)
    ds = open_dataset("samples", 4, hr_crop=s.hr_crop)
    name = doc["held_out"][0] if doc["held_out"] else ds.names()[0]
    pair = ds[ds.names().index(name)]
    model = create_sr_model("demo-edsr", 4).to(dev)
    lr = pair.lr.to(dev)
    res = basic_attack(model, lr, eps=8 / 255, steps=s.steps)
    delta = ((res.x_adv - lr) * (0.5 / (8 / 255)) + 0.5).clamp(0, 1)
    fig = Figure(
        f"{name} (held out of training), demo-edsr x4, basic attack at 8/255",
        [
            ("original LR", lr.cpu()),
            ("attacked LR", res.x_adv.cpu()),
            ("perturbation (amplified)", delta.cpu()),
            ("clean SR", res.sr_clean.cpu()),
            ("attacked SR", res.sr_adv.cpu()),
        ],
    )
    intro = (
        f"Basic attack (I-FGSM, Choi et al. 2019) on bicubic and the bundled demo models, "
        f"samples at x4 (HR crops of {s.hr_crop} px), reference clean-8bit. "
        "LR PSNR: attacked vs clean input; SR PSNR: attacked vs clean output."
    )
    return write_report(path, "advsr demo: SR attacks", intro, _tables(doc), [fig])
