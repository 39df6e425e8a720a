"""Training and weight commands: ``train-sr``, ``train-classifier``, ``convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from advsr.cli.app import app, console
from advsr.cli.derive import config_command, extra_option
from advsr.cli.options import JsonOpt
from advsr.cli.output import check_output, print_json
from advsr.models.classifiers.train import TrainClassifierConfig
from advsr.models.sr.train import TrainSRConfig

JSON = extra_option("json_", bool, False, "--json", help="Print one JSON document on stdout.")


@app.command("train-sr")
@config_command(TrainSRConfig, extra=(JSON,))
def train_sr_cmd(settings: dict[str, Any], *, json_: bool) -> None:
    """L1-train a zoo architecture (random crops, flips/rotations, bicubic LR, Adam)."""
    from advsr.models.sr.train import train_sr
    from advsr.settings import validate

    cfg = validate(TrainSRConfig, settings, "train-sr setting")
    check_output(Path(cfg.out), ".safetensors")
    res = train_sr(cfg)
    doc = {
        "out": str(res.out),
        "steps": res.steps,
        "final_loss": res.final_loss,
        "val_psnr": [{"step": s, "psnr": v} for s, v in res.val_psnr],
        "bicubic_val_psnr": res.bicubic_val_psnr,
        "seconds": res.seconds,
    }
    if json_:
        print_json(doc)
        return
    line = f"wrote {res.out} after {res.steps} steps (final L1 {res.final_loss:.4f})"
    if res.val_psnr:
        line += f"; held-out Y-PSNR {res.val_psnr[-1][1]:.2f} dB vs bicubic "
        line += f"{res.bicubic_val_psnr:.2f} dB"
    console.print(line)


@app.command("train-classifier")
@config_command(TrainClassifierConfig, extra=(JSON,))
def train_classifier_cmd(settings: dict[str, Any], *, json_: bool) -> None:
    """Train a zoo classifier with cross-entropy (default: the digits CNN)."""
    from advsr.models.classifiers.train import train_classifier
    from advsr.settings import validate

    cfg = validate(TrainClassifierConfig, settings, "train-classifier setting")
    check_output(Path(cfg.out), ".safetensors")
    res = train_classifier(cfg)
    doc = {"out": str(res.out), "val_accuracy": res.val_accuracy, "seconds": res.seconds}
    if json_:
        print_json(doc)
        return
    console.print(f"wrote {res.out}; validation accuracy {res.val_accuracy[-1]:.4f}")


@app.command()
def convert(
    src: Annotated[
        Path, typer.Argument(help="Weight file (.pth/.pt/.th/.ckpt/.bin/.safetensors).")
    ],
    dst: Annotated[Path, typer.Argument(help="Output .safetensors file.")],
    key: Annotated[
        str | None, typer.Option(help="Entry of the file to take (default: guess the container).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Check that the weights fit this zoo model first.")
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
