"""Option types of the commands that are not derived from a config, and KEY=VALUE parsing.

Experiment commands derive their options from their configs (:mod:`advsr.cli.derive`);
the store, JSON and report options they share are :data:`advsr.cli.derive.OUTPUT`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from advsr.errors import InputError

__all__ = [
    "AddressOpt",
    "BackendOpt",
    "DeviceOpt",
    "JsonOpt",
    "StoreOpt",
    "WorkersOpt",
    "parse_options",
]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
StoreOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--store", help="Result store (SQLite); default $ADVSR_STORE or ./advsr-results.sqlite."
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")]
BackendOpt = Annotated[
    str,
    typer.Option(help="Where cells run: local or ray (a Ray cluster; pip install 'advsr[ray]')."),
]
AddressOpt = Annotated[
    Optional[str],
    typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else a local Ray instance)."),
]
WorkersOpt = Annotated[Optional[int], typer.Option(help="Ray tasks in flight (default: the CPUs).")]


def parse_options(items: Optional[List[str]], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict (VALUE parsed as JSON when it can be, and ``1,2,3`` as
    a list). A key given twice is an error.

    Raises:
        InputError: an item without ``=`` or a repeated key.

    Example:
        >>> parse_options(["n_feats=32", "level_blocks=8,2,1", "name=x"], "--arch")
        {'n_feats': 32, 'level_blocks': [8, 2, 1], 'name': 'x'}
    """
    opts: dict[str, Any] = {}
    for item in items or []:
        k, eq, v = item.partition("=")
        if not eq or not k:
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
