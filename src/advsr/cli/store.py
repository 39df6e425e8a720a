"""Store commands: ``run`` (a spec), ``results`` (cells and pivots), ``report`` (rebuilt from
the store without computing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from advsr.cli.app import app, console
from advsr.cli.options import (
    AddressOpt,
    BackendOpt,
    JsonOpt,
    StoreOpt,
    WorkersOpt,
    parse_options,
)
from advsr.cli.output import check_output, print_json, print_tables, write_parts
from advsr.errors import InputError


@app.command("run")
def run_cmd(
    spec_file: Annotated[
        Path, typer.Argument(help="Experiment spec (TOML): experiment, [grid], [settings].")
    ],
    store: StoreOpt = None,
    json_: JsonOpt = False,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Run every cell of a spec (any registered experiments); finished cells are read back."""
    from advsr.cli.output import use_backend
    from advsr.engine.run import run_spec_file

    where = use_backend(backend, address, workers)
    doc, tables = run_spec_file(spec_file, store, backend=where)
    if json_:
        print_json(doc)
        return
    for name, ts in tables.items():
        n = sum(r["experiment"] == name for r in doc["runs"])
        console.print(f"{name}: {n} cell(s) from {spec_file}")
        print_tables(ts)
    console.print(
        f"{len(doc['runs'])} cell(s): {doc['computed']} row(s) computed, "
        f"{doc['from_store']} read from the store."
    )


def _existing_store(path: Optional[Path]) -> Any:
    """The store at ``path`` (or the default) opened for reading only: nothing is written,
    and a store on a read-only file, folder or mount is read.

    Raises:
        InputError: there is no file at the path.
        StoreError: the file is not a store, or is damaged.
    """
    from advsr.engine.store import ResultStore, default_store_path

    p = path or default_store_path()
    if not Path(p).exists():
        raise InputError(f"no result store at {p} (run a command first or pass --store)")
    return ResultStore(p, read_only=True)


@app.command()
def results(
    experiment: Annotated[Optional[str], typer.Option(help="Keep one experiment.")] = None,
    rows: Annotated[
        Optional[str], typer.Option(help="Setting on the rows (e.g. model, image).")
    ] = None,
    cols: Annotated[
        Optional[str], typer.Option(help="Setting on the columns (e.g. scale).")
    ] = None,
    value: Annotated[str, typer.Option(help="Metric to average (e.g. psnr, ssim).")] = "psnr",
    where: Annotated[
        Optional[List[str]],
        typer.Option(help="Filter KEY=VALUE (repeatable; VALUE parsed as JSON)."),
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Query the store: the cells (with every setting that tells them apart), or a pivot
    table of means that never averages cells whose settings differ."""
    from advsr.engine.listing import cell_listing, pivot_table
    from advsr.engine.tables import store_table

    filt = parse_options(where, "--where")
    _check_keys(filt, experiment)
    with _existing_store(store) as st:
        if rows is None:
            doc, table = cell_listing(st, experiment, filt)
        else:
            t = store_table(
                st, rows=rows, cols=cols, value=value, experiment=experiment, where=filt
            )
            doc, table = {"table": t.to_dict()}, pivot_table(t)
    if json_:
        print_json(doc)
        return
    print_tables([table])


def _check_keys(filt: dict[str, Any], experiment: str | None) -> None:
    """Refuse a ``--where`` key that is no setting (of ``experiment``, or of any
    experiment), instead of an empty table."""
    import difflib

    from advsr.engine.cell import EXPERIMENTS

    names = [experiment] if experiment else EXPERIMENTS.names()
    known = sorted({f for n in names for f in EXPERIMENTS.get(n).config.model_fields})
    for key in filt:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            what = f"a setting of {experiment}" if experiment else "a setting of any experiment"
            raise InputError(f"--where {key}=...: {key!r} is not {what}{hint}")


@app.command()
def report(
    experiment: Annotated[str, typer.Option(help="The experiment whose cells are reported.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    where: Annotated[
        Optional[List[str]], typer.Option(help="Keep cells whose KEY=VALUE (repeatable).")
    ] = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Rebuild an experiment's report from the store alone (nothing is computed)."""
    from advsr.engine.cell import EXPERIMENTS
    from advsr.engine.driver import read_cells

    check_output(out)
    exp = EXPERIMENTS.get(experiment)
    filt = parse_options(where, "--where")
    _check_keys(filt, experiment)
    with _existing_store(store) as st:
        cells = read_cells(st, experiment, filt)
        if not cells:
            raise InputError(f"the store holds no {experiment} cells matching the filter")
        doc = exp.summarise(cells, st)
        doc["report"] = str(write_parts(out, exp.report_parts(doc, cells, st), cells))
    if json_:
        print_json(doc)
        return
    print_tables(exp.tables(doc))
    console.print(f"wrote {doc['report']} from {len(cells)} stored cell(s)")
