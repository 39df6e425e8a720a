"""What every command shares: the store, output paths, JSON and tables, running cells.

:func:`run_and_show` is the path of every experiment command: check the output paths, plan
every cell (all validated before any work), run them against the store, summarise from the
stored rows, write the report if asked, print tables or one JSON document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table as RichTable

from advsr.cli.app import console
from advsr.jsonutil import json_safe
from advsr.report import ReportTable, write_report

__all__ = [
    "check_output",
    "open_store",
    "print_json",
    "print_tables",
    "run_and_show",
    "use_backend",
    "write_parts",
]


def use_backend(kind: str, address: str | None, workers: int | None) -> Any:
    """Where this command's cells run (``--backend``, ``--address``, ``--workers``), as the
    :class:`~advsr.engine.backend.Backend` the command passes on.

    Raises:
        InputError: an unknown backend, or Ray options without ``--backend ray``.
    """
    from advsr.engine.backend import Backend

    return Backend(kind, address, workers)  # type: ignore[arg-type]


def print_json(doc: Any) -> None:
    """One JSON document on stdout (non-finite numbers as strings)."""
    sys.stdout.write(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n")


def print_tables(tables: Sequence[ReportTable]) -> None:
    """Each table as a rich table on stdout."""
    for t in tables:
        rt = RichTable(title=escape(t.title))
        for i, h in enumerate(t.header):
            rt.add_column(escape(str(h)), justify="left" if i == 0 else "right", overflow="fold")
        for row in t.rows:
            rt.add_row(*(escape(str(c)) for c in row))
        console.print(rt)
        for note in t.notes:
            console.print(f"  {escape(note)}", highlight=False)


def open_store(path: Path | None) -> Any:
    """The result store at ``path`` (default: ``$ADVSR_STORE`` or the working folder) for one
    command: a store this command created is removed again if the command fails before
    storing anything."""
    from advsr.engine.store import default_store_path, store_session

    return store_session(path or default_store_path())


def default_note(option: str, value: str, what: str) -> str:
    """The line that says a default changes what is measured (``--attack`` not given:
    ``fgsm@8/255`` runs), so a table is never read as something it is not;
    :func:`run_and_show` prints it once on stderr, after every cell is valid."""
    return f"advsr: note: no {option} given: {what} {value} (the default)"


def check_output(path: Path | None, suffix: str | None = None) -> None:
    """Refuse an output path before any work: a folder, a file in place of a folder above
    it, or the wrong suffix.

    Raises:
        InputError: the path cannot be written.
    """
    from advsr.io import check_output_path

    if path is not None:
        check_output_path(path, suffix)


def write_parts(path: Path, parts: Any, cells: Sequence[Any] = ()) -> Path:
    """Write a report from an experiment's :class:`~advsr.engine.cell.ReportParts`,
    with the provenance of the ``cells`` it was built from."""
    from advsr.provenance import of_cells, provenance_lines

    prov = provenance_lines(of_cells(list(cells))) if cells else None
    return write_report(
        path,
        parts.title,
        parts.intro,
        parts.tables,
        parts.figures,
        list(parts.plots),
        provenance=prov,
    )


def run_and_show(
    experiment: str,
    cells: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    store: Path | None,
    json_: bool,
    report: Path | None = None,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    notes: Callable[[dict[str, Any]], list[str]] | None = None,
    defaults: Sequence[str] = (),
    backend: Any = None,
) -> dict[str, Any]:
    """Run the cells of one experiment and print the result (see the module docstring).

    Args:
        experiment: the experiment whose summary and tables are shown.
        cells: ``(experiment, settings)`` pairs.
        store: the result store path.
        json_: print one JSON document instead of tables.
        report: write the experiment's HTML report here.
        shape: reshapes the JSON document (e.g. one cell's document at the top level).
        notes: lines printed under the tables.
        defaults: lines saying which defaults decide what is measured (:func:`default_note`),
            printed on stderr once the cells have run (a refused or failed run prints only
            its error).
        backend: where the cells run (:func:`use_backend`; None: this process).
    """
    from advsr.engine.cell import EXPERIMENTS
    from advsr.engine.context import Context
    from advsr.engine.driver import run_plans
    from advsr.engine.plan import plan_cells
    from advsr.engine.store import ResultStore, default_store_path

    check_output(report)
    ResultStore.check_path(store or default_store_path())
    exp = EXPERIMENTS.get(experiment)
    plans = plan_cells(cells, Context())  # every cell validated before the store is touched
    with open_store(store) as st:
        runs = run_plans(plans, st, backend=backend)
        for line in defaults:  # once, and only for a run that went through
            sys.stderr.write(line + "\n")
        doc = exp.summarise(runs, st)
        doc["computed"] = sum(r.computed for r in runs)
        doc["from_store"] = sum(r.from_store for r in runs)
        from advsr.provenance import of_cells

        doc["provenance"] = of_cells(runs)
        if report is not None:
            doc["report"] = str(write_parts(report, exp.report_parts(doc, runs, st), runs))
    shown = shape(doc) if shape else doc
    if json_:
        print_json(shown)
        return doc
    print_tables(exp.tables(doc))
    for line in notes(doc) if notes else []:
        console.print(line)
    if doc["from_store"]:
        console.print(
            f"{doc['from_store']} row(s) read from the store, {doc['computed']} computed."
        )
    if report is not None:
        console.print(f"wrote {doc['report']}")
    return doc
