"""SR commands: ``eval-sr``, ``attack-sr``, ``transfer`` (options from the cell configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advsr.cli.app import app
from advsr.cli.derive import OUTPUT, config_command, extra_option
from advsr.cli.output import run_and_show
from advsr.experiments.attack_sr import AttackSRConfig
from advsr.experiments.eval_sr import EvalSRConfig
from advsr.experiments.transfer_sr import TransferSRConfig


def _one_cell(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a one-cell command: that cell's document at the top level."""
    return {"experiment": doc["experiment"], **doc["cells"][0], "computed": doc["computed"]}


@app.command("eval-sr")
@config_command(
    EvalSRConfig,
    flags={"y_channel": ("--y-channel/--rgb",), "quantize": ("--quantize/--float",)},
    extra=OUTPUT,
)
def eval_sr_cmd(
    settings: dict[str, Any],
    *,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Fidelity (PSNR/SSIM) of an SR model on a dataset; resumes from the result store."""
    run_and_show(
        "eval-sr",
        [("eval-sr", settings)],
        store=store,
        json_=json_,
        report=report,
        shape=_one_cell,
        backend=backend,
    )


ALPHA = extra_option(
    "alpha",
    list[str] | None,
    None,
    "--alpha",
    "--eps",
    help="Total L-inf budget, e.g. 8/255 (repeatable: one cell each; default 8/255).",
)


@app.command("attack-sr")
@config_command(AttackSRConfig, skip=("eps",), extra=(ALPHA, *OUTPUT))
def attack_sr_cmd(
    settings: dict[str, Any],
    *,
    alpha: list[str] | None,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Attack an SR model (basic, partial, universal, or apply a saved Delta): LR and SR
    PSNR per budget."""
    if not alpha:  # the config's default budget; an attack's own @budget may replace it
        cells = [("attack-sr", dict(settings))]
    else:  # the text as given: the config parses it (once)
        cells = [("attack-sr", {**settings, "eps": a}) for a in alpha]
    run_and_show(
        "attack-sr",
        cells,
        store=store,
        json_=json_,
        report=report,
        shape=_by_budget,
        backend=backend,
    )


def _by_budget(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON of ``attack-sr``: the mean PSNRs keyed by budget, and the cells."""
    from advsr.attacks.budget import format_budget

    mean = {
        format_budget(c["config"]["eps"]): {k: v for k, v in c["mean"].items() if "psnr" in k}
        for c in doc["cells"]
    }
    return {**doc, "mean": mean, "runs": doc["cells"]}


SOURCES = extra_option(
    "model",
    list[str],
    ...,
    "--model",
    help="Source model, zoo name or file (repeatable; also the targets by default).",
)
TARGETS = extra_option(
    "target", list[str] | None, None, "--target", help="Target model (repeatable)."
)
WEIGHTS = extra_option(
    "weights",
    list[str] | None,
    None,
    "--weights",
    help="NAME=FILE or NAME@xS=FILE weights (repeatable); FILE alone with one model.",
)


def _named_weights(items: list[str] | None, models: list[str], scale: int) -> dict[str, str]:
    """``--weights`` of a command with several models: model -> file, in the one grammar
    (``FILE`` only when the run has one model; ``NAME@xS=FILE`` only at the run's scale)."""
    from advsr.errors import InputError
    from advsr.weight_args import WEIGHTS_GRAMMAR, parse_weight_arg

    names = list(dict.fromkeys(models))
    files: dict[str, str] = {}
    for item in items or []:
        arg = parse_weight_arg(item)
        if arg.name is None and len(names) != 1:
            raise InputError(
                f"--weights {item!r}: this run has several models ({', '.join(names)}); "
                f"expects {WEIGHTS_GRAMMAR}"
            )
        name = arg.name if arg.name is not None else names[0]
        if arg.scale is not None and arg.scale != scale:
            continue  # a file for another scale of the release: not this run's
        if name in files:
            raise InputError(f"--weights gives {name} twice")
        files[name] = arg.path
    return files


@app.command()
@config_command(
    TransferSRConfig,
    skip=("source", "targets", "weights"),
    flags={"eps": ("--alpha", "--eps")},
    budgets=("eps",),
    extra=(SOURCES, TARGETS, WEIGHTS, *OUTPUT),
)
def transfer(
    settings: dict[str, Any],
    *,
    model: list[str],
    target: list[str] | None,
    weights: list[str] | None,
    store: Path | None,
    report: Path | None,
    json_: bool,
    backend: Any,
) -> None:
    """Transferability: attacks crafted on each source, SR PSNR on every target."""
    from advsr.errors import InputError

    targets = list(target or model)
    files = _named_weights(weights, [*model, *targets], settings.get("scale", 2))
    unknown = sorted(set(files) - {*model, *targets})
    if unknown:
        raise InputError(f"--weights given for models not in the run: {', '.join(unknown)}")
    cells = [
        (
            "transfer",
            {
                **settings,
                "source": src,
                "targets": targets,
                "weights": {k: v for k, v in files.items() if k in (src, *targets)},
            },
        )
        for src in dict.fromkeys(model)
    ]
    run_and_show("transfer", cells, store=store, json_=json_, report=report, backend=backend)
