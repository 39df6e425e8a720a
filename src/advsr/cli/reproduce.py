"""``advsr reproduce PAPER``: a seed paper's tables and figures next to its numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from advsr.cli.app import app, console
from advsr.cli.options import AddressOpt, BackendOpt, JsonOpt, StoreOpt, WorkersOpt
from advsr.cli.output import check_output, open_store, print_json, print_tables, use_backend
from advsr.errors import InputError


def _pairs(
    items: Optional[List[str]], flag: str, default_key: str | None, grammar: str = "NAME=PATH"
) -> dict[str, str]:
    """``NAME=PATH`` items (a bare ``PATH`` names ``default_key``, the paper's only slot)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, eq, path = item.partition("=")
        if not eq:
            if default_key is None:
                raise InputError(f"{flag} expects {grammar} here, got {item!r}")
            name, path = default_key, item
        if not name or not path:
            raise InputError(f"{flag} expects {grammar}, got {item!r}")
        if name in out:
            raise InputError(f"{flag} gives {name!r} twice")
        out[name] = path
    return out


@app.command("reproduce")
def reproduce_cmd(
    paper: Annotated[
        Optional[str], typer.Argument(help="The paper (see --list).", show_default=False)
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the papers: key, title, what it reproduces.")
    ] = False,
    size: Annotated[
        str,
        typer.Option(help="quick: minutes on 2 cores; paper: the paper's protocol (resumable)."),
    ] = "quick",
    data: Annotated[
        Optional[List[str]],
        typer.Option(help="SLOT=DIR, repeatable (a bare DIR when the paper has one slot)."),
    ] = None,
    weights: Annotated[
        Optional[List[str]],
        typer.Option(
            help="MODEL=FILE, repeatable: official weights of a paper's model; where a paper "
            "has SR stages (sr-defense), any SR zoo model, one file for every scale it "
            "fits (carn-m=carn_m.pth) or NAME@xS=FILE for one scale (imdn@x3=IMDN_x3.pth)."
        ),
    ] = None,
    table: Annotated[
        Optional[List[str]], typer.Option(help="Only this table (by id), repeatable.")
    ] = None,
    store: StoreOpt = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    report: Annotated[
        Optional[Path], typer.Option(help="Write an HTML report (tables and figures).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Run a paper's tables (through the store) and print them beside its published numbers."""
    from advsr.reproduce import load_paper, reproduce

    if list_:
        _list_papers(json_)
        return
    if paper is None:
        raise InputError("name a paper (advsr reproduce --list shows them)")
    if size not in ("quick", "paper"):
        raise InputError(f"--size must be quick or paper, got {size!r}")
    spec = load_paper(paper)
    if table:
        spec = spec.only(table)
    only = next(iter(spec.data)) if len(spec.data) == 1 else None
    data_map = _pairs(data, "--data", only)
    from advsr.reproduce.spec import WEIGHTS_GRAMMAR, weights_key

    weights_map = _pairs(weights, "--weights", None, WEIGHTS_GRAMMAR)
    for key in weights_map:
        weights_key(key)  # the grammar, before any file is read
    check_output(report, ".html")
    where = use_backend(backend, address, workers)
    from advsr.engine.store import ResultStore, default_store_path

    ResultStore.check_path(store or default_store_path())
    with open_store(store) as st:
        rep = reproduce(
            paper,
            st,
            size="paper" if size == "paper" else "quick",
            data=data_map,
            weights=weights_map,
            tables=table,
            backend=where,
        )
    _show(spec, rep, paper, size, report, json_)


def _list_papers(json_: bool) -> None:
    """``advsr reproduce --list``: one line per paper (or JSON)."""
    from advsr.reproduce import paper_list

    papers = paper_list()
    if json_:
        print_json({"papers": papers})
        return
    for p in papers:
        console.print(f"{p['key']}: {p['title']} - {p['reproduces']}", highlight=False)


def _show(spec: Any, rep: Any, paper: str, size: str, report: Path | None, json_: bool) -> None:
    """Write the HTML report (when asked) and print the tables, the notes (or JSON)."""
    if report is not None:
        from advsr.report import write_report

        intro = f"{spec.citation}. Size: {size}. " + " ".join(
            [f"{k}: {v}." for k, v in spec.protocol.items()] + list(spec.notes)
        )
        from advsr.provenance import provenance_lines

        write_report(
            report,
            f"advsr reproduce {paper}: {spec.title}",
            intro,
            rep.tables,
            rep.figures,
            rep.plots,
            provenance=provenance_lines(rep.provenance) if rep.provenance else None,
        )
    if json_:
        print_json(rep.doc)
        return
    console.print(f"{spec.title} ({spec.citation}), size {size}", highlight=False)
    print_tables(rep.tables)
    for note in spec.notes:
        console.print(f"note: {note}", highlight=False)
    if report is not None:
        console.print(f"report: {report}")
