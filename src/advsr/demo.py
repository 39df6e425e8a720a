"""``advsr demo``: the main job on the embedded data, end to end.

1. fidelity of bicubic and the bundled demo models (x2, x4) on ``samples``;
2. the basic attack (Choi et al. 2019) at eps (the paper's alpha) in {1, 2, 4, 8, 16}/255,
   T = 50, x4, on each model: the paper's tables (rows eps, columns model) of LR PSNR and SR
   PSNR, and their curves over eps;
3. a transferability matrix at 8/255;
4. an HTML report with the tables, the curves and, for one held-out image, the original and
   attacked LR, the amplified perturbation, and the clean and attacked SR outputs.

Every cell is an experiment cell in the result store (re-runs read finished cells back), and
the report is rendered from the store. ``quick`` runs the same code on small crops with fewer
steps and budgets (the test suite's smoke run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advsr.engine.cell import CellRun, stored_figures
from advsr.engine.driver import run_cells
from advsr.engine.store import ResultStore
from advsr.experiments import attack_sr
from advsr.experiments.transfer_sr import tables as transfer_tables
from advsr.experiments.transfer_sr import transfer_matrix
from advsr.models.sr import bundled_training
from advsr.report import Plot, ReportTable, fmt, write_report

__all__ = ["DEMO_MODELS", "DemoSettings", "demo_tables", "run_demo"]

DEMO_MODELS = ("bicubic", "demo-edsr", "demo-carn-m")
FIGURE_MODEL = "demo-edsr"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs (full or quick)."""

    alphas: tuple[int, ...]  # in 1/255 units
    steps: int
    hr_crop: int | None  # attack crops (HR pixels)
    fidelity_crop: int | None

    @classmethod
    def make(cls, quick: bool) -> DemoSettings:
        if quick:
            return cls(alphas=(2, 8), steps=5, hr_crop=48, fidelity_crop=96)
        return cls(alphas=(1, 2, 4, 8, 16), steps=50, hr_crop=128, fidelity_crop=None)


def _held_out() -> list[str]:
    return sorted(
        {
            n
            for m in DEMO_MODELS[1:]
            for sc in (2, 4)
            for n in bundled_training(m, sc).get("holdout", [])
        }
    )


def demo_cells(quick: bool, device: str) -> list[tuple[str, dict[str, Any]]]:
    """Every cell of the demo, in order: fidelity, attacks, transfer."""
    s = DemoSettings.make(quick)
    models = list(DEMO_MODELS)
    shown = _held_out()[:1]
    cells: list[tuple[str, dict[str, Any]]] = [
        ("eval-sr", {"model": m, "scale": sc, "data": "samples", "hr_crop": s.fidelity_crop})
        for sc in (2, 4)
        for m in models
    ]
    cells += [
        (
            "attack-sr",
            {
                "model": m,
                "eps": a / 255,
                "data": "samples",
                "scale": 4,
                "steps": s.steps,
                "hr_crop": s.hr_crop,
                "show": shown if m == FIGURE_MODEL and a == 8 else [],
            },
        )
        for m in models
        for a in s.alphas
    ]
    cells += [
        (
            "transfer",
            {
                "source": src,
                "targets": models,
                "data": "samples",
                "scale": 4,
                "eps": 8 / 255,
                "steps": s.steps,
                "hr_crop": s.hr_crop,
            },
        )
        for src in models
    ]
    return [(name, {**cfg, "device": device}) for name, cfg in cells]


def run_demo(
    store: ResultStore,
    *,
    quick: bool = False,
    device: str = "auto",
    report: Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run the demo; returns one JSON-ready document (see the module docstring)."""
    s = DemoSettings.make(quick)
    runs = run_cells(demo_cells(quick, device), store, progress=progress)
    fid = [r for r in runs if r.experiment == "eval-sr"]
    atk = [r for r in runs if r.experiment == "attack-sr"]
    trans = [r for r in runs if r.experiment == "transfer"]
    held_out = _held_out()
    fidelity: dict[str, dict[str, dict[str, float]]] = {}
    for r in fid:
        rows = [x for x in r.rows if x["image"] in held_out]
        fidelity.setdefault(r.config["model"], {})[f"x{r.config['scale']}"] = {
            "psnr_all": r.mean["psnr"],
            "psnr_held_out": sum(x["psnr"] for x in rows) / max(len(rows), 1),
        }
    lr: dict[str, dict[str, float]] = {m: {} for m in DEMO_MODELS}
    sr: dict[str, dict[str, float]] = {m: {} for m in DEMO_MODELS}
    for r in atk:
        label = f"{round(r.config['eps'] * 255)}/255"
        lr[r.config["model"]][label] = r.mean["lr_psnr"]
        sr[r.config["model"]][label] = r.mean["sr_psnr"]
    doc: dict[str, Any] = {
        "demo": "SR attacks on the bundled models and bicubic (samples, x4)",
        "quick": quick,
        "held_out": held_out,
        "fidelity": fidelity,
        "fidelity_cells": [
            {"model": r.config["model"], "scale": r.config["scale"], "rows": r.rows} for r in fid
        ],
        "attack": {
            "alphas": [f"{a}/255" for a in s.alphas],
            "steps": s.steps,
            "hr_crop": s.hr_crop,
            "lr_psnr": lr,
            "sr_psnr": sr,
        },
        "transfer": {
            "alpha": "8/255",
            "sources": list(DEMO_MODELS),
            "targets": list(DEMO_MODELS),
            "matrix": transfer_matrix(trans, list(DEMO_MODELS)),
        },
        "cells": [r.brief() for r in runs],
        "computed": sum(r.computed for r in runs),
    }
    if report is not None:
        doc["report"] = str(write_demo_report(report, doc, atk, store))
    return doc


def demo_tables(doc: dict[str, Any]) -> list[ReportTable]:
    """The demo's tables: clean fidelity per image, LR and SR PSNR per eps, transfer."""
    held = set(doc["held_out"])
    cells = doc["fidelity_cells"]
    header = ["image", *(f"{c['model'].removeprefix('demo-')} x{c['scale']}" for c in cells)]
    body = [
        [f"{row['image']}*" if row["image"] in held else row["image"]]
        + [fmt(c["rows"][i]["psnr"], 2) for c in cells]
        for i, row in enumerate(cells[0]["rows"])
    ]
    for label, key in (("mean held out*", "psnr_held_out"), ("mean all", "psnr_all")):
        body.append(
            [label, *(fmt(doc["fidelity"][c["model"]][f"x{c['scale']}"][key], 2) for c in cells)]
        )
    crop = " (quick: crops)" if doc["quick"] else ""
    out = [ReportTable(f"clean Y-PSNR (dB) on samples{crop}; * held out of training", header, body)]
    a = doc["attack"]
    for kind, key in (("LR", "lr_psnr"), ("SR", "sr_psnr")):
        out.append(
            ReportTable(
                f"basic attack, x4, T={a['steps']}: {kind} PSNR (dB, RGB)",
                ["alpha", *(m.removeprefix("demo-") for m in DEMO_MODELS)],
                [[e, *(fmt(a[key][m][e], 2) for m in DEMO_MODELS)] for e in a["alphas"]],
            )
        )
    out += transfer_tables(doc["transfer"])
    return out


def write_demo_report(
    path: Path, doc: dict[str, Any], attacks: list[CellRun], store: ResultStore
) -> Path:
    """The demo's HTML report, from the document and the store's figures."""
    a = doc["attack"]
    plots = [
        Plot(
            f"{kind} PSNR under the basic attack (x4, T = {a['steps']})",
            "alpha (x/255)",
            f"{kind} PSNR (dB, RGB)",
            [
                (m, [(float(e.split("/")[0]), a[key][m][e]) for e in a["alphas"]])
                for m in DEMO_MODELS
            ],
            ylim=None,
        )
        for kind, key in (("SR", "sr_psnr"), ("LR", "lr_psnr"))
    ]
    shown = [c for c in attacks if c.config.get("show")]
    figures = stored_figures(shown, store, attack_sr.figure_title)
    intro = (
        "Basic attack (I-FGSM, Choi et al. 2019) on bicubic and the bundled demo models, "
        f"samples at x4 (HR crops of {a['hr_crop']} px), reference clean-8bit. "
        "LR PSNR: attacked vs clean input; SR PSNR: attacked vs clean output."
    )
    from advsr.provenance import of_cells, provenance_lines

    return write_report(
        path,
        "advsr demo: SR attacks",
        intro,
        demo_tables(doc),
        figures,
        plots,
        provenance=provenance_lines(of_cells(attacks)),
    )
