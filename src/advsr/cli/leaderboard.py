"""``advsr leaderboard``: the SR robustness leaderboard (see :mod:`advsr.leaderboard`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from advsr.cli.app import app, console
from advsr.cli.options import AddressOpt, BackendOpt, DeviceOpt, JsonOpt, StoreOpt, WorkersOpt
from advsr.cli.output import open_store, print_json, print_tables, use_backend
from advsr.errors import InputError


def _check_out(out: Optional[Path]) -> None:
    """Refuse an ``--out`` that cannot be a folder, before any work."""
    if out is None:
        return
    from advsr.io import check_writable

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    check_writable(out, folder=True)  # a file above it, a read-only place


@app.command("leaderboard")
def leaderboard_cmd(
    protocol: Annotated[str, typer.Option(help="The protocol version.")] = "v1",
    quick: Annotated[
        bool,
        typer.Option("--quick", help="48 px crops, T = 5, two budgets, two images: a smoke run."),
    ] = False,
    data: Annotated[
        Optional[str],
        typer.Option(
            help="SR dataset (default ../shared/data/sr/Set5 when present, else samples)."
        ),
    ] = None,
    scale: Annotated[
        Optional[List[int]], typer.Option(help="SR factor (repeatable; default 2 and 4).")
    ] = None,
    weights: Annotated[
        Optional[List[str]],
        typer.Option(help="NAME=FILE or NAME@xS=FILE: a zoo model with official weights."),
    ] = None,
    model: Annotated[
        Optional[List[str]],
        typer.Option(help="A model file (TorchScript or a zoo state_dict), FILE@xS for one scale."),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Write the static site into this folder.")
    ] = None,
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Rank SR models by robustness under a fixed protocol (cells resume from the store)."""
    from advsr.engine.store import ResultStore, default_store_path
    from advsr.leaderboard import build_leaderboard, default_data, get_protocol, parse_entries
    from advsr.leaderboard.build import leaderboard_tables
    from advsr.leaderboard.site import write_site

    proto = get_protocol(protocol, quick=quick).with_scales(scale)
    entries = parse_entries(weights or [], model or [])
    _check_out(out)
    where = use_backend(backend, address, workers)
    ResultStore.check_path(store or default_store_path())
    command = "advsr " + shlex.join(sys.argv[1:])
    dataset, label = (data, data) if data is not None else default_data(proto)
    with open_store(store) as st:
        lb = build_leaderboard(
            proto, entries, dataset, st, device=device, command=command, backend=where, label=label
        )
    if out is not None:
        lb.doc["site"] = str(write_site(lb, out))
    if json_:
        print_json(lb.doc)
        return
    print_tables(leaderboard_tables(lb.doc))
    doc = lb.doc
    console.print(
        f"{doc['cells']} cell(s): {doc['computed']} row(s) computed, "
        f"{doc['from_store']} read from the store."
    )
    if out is not None:
        console.print(f"site: {doc['site']}")
