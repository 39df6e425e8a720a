"""Listing commands: ``list WHAT``, ``experiments``, and the older ``datasets``, ``models``,
``defenses``."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from advsr.cli.app import app, console
from advsr.cli.options import JsonOpt
from advsr.cli.output import print_json, print_tables
from advsr.report import ReportTable


def _text(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_text(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ",".join(_text(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def show_catalog(what: str, json_: bool, key: Optional[str] = None) -> None:
    """Print one registry's entries as a table, or as JSON (under ``key`` if given)."""
    from advsr.catalog import catalog

    rows = catalog(what)
    if json_:
        print_json({key: rows} if key else {what: rows})
        return
    header = list(dict.fromkeys(k for r in rows for k in r))
    body = [[_text(r.get(h, "")) for h in header] for r in rows]
    print_tables([ReportTable(what, header, body)])


@app.command("list")
def list_cmd(
    what: Annotated[
        str,
        typer.Argument(
            help="attacks, classifiers, datasets, defenses, experiments, models or triggers."
        ),
    ],
    json_: JsonOpt = False,
) -> None:
    """List a registry with its entries' settings and defaults."""
    show_catalog(what, json_)


@app.command()
def experiments() -> None:
    """The registered experiments (what a spec's `experiment` may name), one per line."""
    from advsr.engine.cell import EXPERIMENTS

    for name in EXPERIMENTS.names():
        console.print(name)


@app.command()
def datasets(json_: JsonOpt = False) -> None:
    """List the named datasets (any folder or image path works too)."""
    show_catalog("datasets", json_)
    if not json_:
        console.print(
            "Paths: any folder: HR images, SelfExSR *_HR/*_LR pairs, BasicSR HR/ + "
            "LR_bicubic/X{s}/; labelled: class folders or names ending in _<label>"
        )


@app.command()
def models(json_: JsonOpt = False) -> None:
    """List the SR and RefSR models of the zoo with their scales and parameter counts."""
    show_catalog("models", json_, key="sr_models")


@app.command()
def defenses(json_: JsonOpt = False) -> None:
    """List the defenses, their settings (spec: name:key=value,key=value)."""
    show_catalog("defenses", json_)
