"""``advsr demo``: the main job on the embedded data (see :mod:`advsr.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from advsr.cli.app import app, console
from advsr.cli.options import DeviceOpt, JsonOpt, StoreOpt
from advsr.cli.output import check_output, open_store, print_json, print_tables


@app.command()
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small crops, few steps: seconds, for smoke tests.")
    ] = False,
    report: Annotated[Path, typer.Option(help="HTML report to write.")] = Path(
        "advsr-demo-report.html"
    ),
    device: DeviceOpt = "auto",
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The main job: SR attacks on the bundled models and bicubic over `samples`.

    Clean fidelity, the basic attack at alpha in {1,2,4,8,16}/255 (rows alpha, columns
    model; LR and SR PSNR), a transferability matrix, and an HTML report.
    """
    from advsr.demo import demo_tables, run_demo
    from advsr.engine.store import ResultStore, default_store_path

    check_output(report)
    ResultStore.check_path(store or default_store_path())
    with open_store(store) as st:
        doc = run_demo(st, quick=quick, device=device, report=report)
    if json_:
        print_json(doc)
        return
    print_tables(demo_tables(doc))
    console.print(f"HTML report: {doc['report']}")
