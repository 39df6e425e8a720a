"""Option types shared by the commands (one definition each), and argument parsing helpers.

Defaults of options that set an experiment config field equal the config's default (checked
by ``tests/test_cli_options.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from advsr.errors import InputError

__all__ = [
    "AttacksOpt",
    "BatchOpt",
    "ClfDataOpt",
    "ClfModelOpt",
    "DeviceOpt",
    "EpsOpt",
    "JsonOpt",
    "KappaOpt",
    "LimitOpt",
    "LossOpt",
    "PatternOpt",
    "PerClassOpt",
    "ReportOpt",
    "SRDataOpt",
    "SRModelOpt",
    "SeedOpt",
    "StepsOpt",
    "StoreOpt",
    "WeightsOpt",
    "parse_options",
    "path_text",
]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="Result store (SQLite); default $ADVSR_STORE or ./advsr-results.sqlite."
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")]
ReportOpt = Annotated[Path | None, typer.Option(help="Write an HTML report here.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of all randomness (random starts, draws).")]

SRModelOpt = Annotated[
    str, typer.Option(help="SR model: a zoo name (`advsr list models`) or a model file.")
]
SRDataOpt = Annotated[str, typer.Option(help="Dataset name or path (see `advsr list datasets`).")]
WeightsOpt = Annotated[Path | None, typer.Option(help="Weight file of a zoo model.")]

ClfModelOpt = Annotated[
    str,
    typer.Option(help="Classifier: a zoo name (`advsr list classifiers`) or a model file."),
]
ClfDataOpt = Annotated[
    str, typer.Option(help="Labelled dataset: digits, digits-test or a class-folder path.")
]
PatternOpt = Annotated[str | None, typer.Option(help="File-name glob (e.g. 'cifar10_*').")]
PerClassOpt = Annotated[int | None, typer.Option(help="First N images of each class.")]
LimitOpt = Annotated[int | None, typer.Option(help="First N images only.")]
AttacksOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attack",
        help="Attack, or attack@budget such as fgsm@2/255 (repeatable; `advsr list attacks`).",
    ),
]
EpsOpt = Annotated[
    list[str] | None,
    typer.Option("--eps", help="Budget of attacks named without @, e.g. 8/255 (repeatable)."),
]
StepsOpt = Annotated[
    int | None, typer.Option(help="Iterations of iterative attacks (default: the attack's).")
]
LossOpt = Annotated[
    str | None,
    typer.Option(help="Objective of gradient attacks: ce or cw (default: the attack's)."),
]
KappaOpt = Annotated[
    float | None, typer.Option(help="Confidence of the C&W margin (default: the attack's).")
]
BatchOpt = Annotated[int, typer.Option(help="Images per batch.")]


def path_text(p: Path | None) -> str | None:
    """A path option as the string a config holds."""
    return None if p is None else str(p)


def parse_options(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict (VALUE parsed as JSON when it can be, and ``1,2,3`` as
    a list). A key given twice is an error.

    Raises:
        InputError: an item without ``=`` or a repeated key.
    """
    opts: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{flag} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if not k:
            raise InputError(f"{flag} expects KEY=VALUE, got {item!r}")
        if k in opts:
            raise InputError(f"{flag} gives {k!r} twice")
        opts[k] = v
        for text in (v, f"[{v}]") if "," in v else (v,):
            try:
                opts[k] = json.loads(text)
                break
            except json.JSONDecodeError:
                pass
    return opts
