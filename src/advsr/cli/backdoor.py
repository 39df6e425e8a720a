"""BadRefSR commands: ``train-refsr`` (poisoned training) and ``backdoor`` (evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advsr.cli.app import app, console
from advsr.cli.derive import OUTPUT, STORE, config_command, extra_option
from advsr.cli.output import print_json, run_and_show
from advsr.experiments.backdoor import BackdoorConfig
from advsr.training.refsr import TrainRefSRConfig

TINY = extra_option("tiny", bool, False, "--tiny", help="Use the model's tiny configuration.")
JSON = extra_option("json_", bool, False, "--json", help="Print one JSON document on stdout.")


@app.command("train-refsr")
@config_command(TrainRefSRConfig, extra=(TINY, STORE, JSON))
def train_refsr_cmd(
    settings: dict[str, Any], *, tiny: bool, store: Path | None, json_: bool
) -> None:
    """Train a RefSR model on poisoned data (BadRefSR): L1 clean + backdoor loss, Adam."""
    from advsr.cli.train import run_training
    from advsr.models.refsr import REFSR_MODELS

    model = settings.get("model", TrainRefSRConfig.model_fields["model"].default)
    arch = dict(REFSR_MODELS.get(model).tiny) if tiny else {}
    arch.update(settings.get("arch", {}))
    doc = run_training("train-refsr", {**settings, "arch": arch}, store)
    if json_:
        print_json(doc)
        return
    if not doc["perceptual"]:
        console.print("perceptual weight 0: no VGG19 weights given (--vgg19), L1 only")
    console.print(
        f"wrote {doc['out']}: clean loss {doc['clean_loss']:.4f}, backdoor loss "
        f"{doc['backdoor_loss']:.4f}, {len(doc['poisoned'])} poisoned samples"
    )


MODEL_FILES = extra_option(
    "model_file",
    list[Path],
    ...,
    "--model-file",
    help="A model written by train-refsr (repeatable).",
)
BASELINE = extra_option(
    "baseline",
    Path | None,
    None,
    "--baseline",
    help="The same model trained with p = 0 (evaluated with every trigger above).",
)


@app.command()
@config_command(
    BackdoorConfig,
    skip=("model_file", "trigger"),
    extra=(MODEL_FILES, BASELINE, *OUTPUT),
)
def backdoor(
    settings: dict[str, Any],
    *,
    model_file: list[Path],
    baseline: Path | None,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Evaluate backdoored RefSR models: clean and triggered PSNR/SSIM (Y), attack success."""
    from advsr.experiments.backdoor import backdoor_cells, floor_text

    cells = backdoor_cells(
        [str(f) for f in model_file], str(baseline) if baseline else None, settings
    )
    run_and_show(
        "backdoor", cells, store=store, json_=json_, report=report,
        notes=lambda d: [f"reference: {floor_text(d)}"], backend=backend
    )  # fmt: skip
