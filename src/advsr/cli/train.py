"""Training and weight commands: ``train-sr``, ``train-classifier``, ``convert``.

Training runs are cells (:mod:`advsr.experiments.training`): the same config again reads the
stored weights back instead of training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from advsr.cli.app import app, console
from advsr.cli.derive import STORE, config_command, extra_option
from advsr.cli.options import JsonOpt
from advsr.cli.output import check_output, open_store, print_json
from advsr.training.classifier import TrainClassifierConfig
from advsr.training.sr import TrainSRConfig

JSON = extra_option("json_", bool, False, "--json", help="Print one JSON document on stdout.")


def run_training(
    experiment: str, settings: dict[str, Any], store: Optional[Path]
) -> dict[str, Any]:
    """Run one training cell (or read it back) and make sure its weights are at ``out``."""
    from advsr.engine.context import Context
    from advsr.engine.driver import run_plans
    from advsr.engine.plan import plan_cells
    from advsr.engine.store import ResultStore, default_store_path
    from advsr.experiments.training import materialise

    ResultStore.check_path(store or default_store_path())
    plans = plan_cells([(experiment, settings)], Context())
    with open_store(store) as st:
        (run,) = run_plans(plans, st)
        wrote = materialise(run, st)
    return {
        **run.rows[0],
        "out": run.config["out"],
        "computed": run.computed,
        "from_store": wrote or run.computed == 0,
    }


@app.command("train-sr")
@config_command(TrainSRConfig, extra=(STORE, JSON))
def train_sr_cmd(settings: dict[str, Any], *, store: Optional[Path], json_: bool) -> None:
    """L1-train a zoo architecture (random crops, flips/rotations, bicubic LR, Adam)."""
    doc = run_training("train-sr", settings, store)
    doc["val_psnr"] = [{"step": s, "psnr": v} for s, v in doc["val_psnr"]]
    if json_:
        print_json(doc)
        return
    line = f"wrote {doc['out']} after {doc['steps']} steps (final L1 {doc['final_loss']:.4f})"
    if doc["val_psnr"]:
        line += f"; held-out Y-PSNR {doc['val_psnr'][-1]['psnr']:.2f} dB vs bicubic "
        line += f"{doc['bicubic_val_psnr']:.2f} dB"
    console.print(line + (" (from the store)" if doc["from_store"] else ""))


@app.command("train-classifier")
@config_command(TrainClassifierConfig, extra=(STORE, JSON))
def train_classifier_cmd(settings: dict[str, Any], *, store: Optional[Path], json_: bool) -> None:
    """Train a zoo classifier with cross-entropy (default: the digits CNN)."""
    doc = run_training("train-classifier", settings, store)
    if json_:
        print_json(doc)
        return
    console.print(f"wrote {doc['out']}; validation accuracy {doc['final_val_accuracy']:.4f}")


@app.command()
def convert(
    src: Annotated[
        Path, typer.Argument(help="Weight file (.pth/.pt/.th/.ckpt/.bin/.safetensors).")
    ],
    dst: Annotated[Path, typer.Argument(help="Output .safetensors file.")],
    key: Annotated[
        Optional[str],
        typer.Option(help="Entry of the file to take (default: guess the container)."),
    ] = None,
    model: Annotated[
        Optional[str], typer.Option(help="Check that the weights fit this zoo model first.")
    ] = None,
    scale: Annotated[int, typer.Option(help="Scale for the --model check.")] = 4,
    json_: JsonOpt = False,
) -> None:
    """Rewrite a weight file as safetensors (safe loading only: pickled code is refused)."""
    from advsr.io import load_state_dict, save_safetensors

    check_output(dst, ".safetensors")
    sd = load_state_dict(src, key=key)
    if model is not None:
        from advsr.models.sr import SR_MODELS, create_sr_model

        create_sr_model(model, scale, weights=src)  # strict check, one-line report
        adapt = SR_MODELS.get(model).adapt
        sd = adapt(sd) if adapt else sd
    save_safetensors(dst, sd, {"advsr_source": src.name})
    doc = {
        "src": str(src),
        "dst": str(dst),
        "tensors": len(sd),
        "params": sum(int(v.numel()) for v in sd.values()),
    }
    if json_:
        print_json(doc)
        return
    console.print(f"wrote {dst}: {doc['tensors']} tensors, {doc['params']:,} values")
