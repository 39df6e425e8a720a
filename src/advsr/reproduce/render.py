"""A reproduction as a document: every table with ours, the paper's number and the
difference, the notes on why they may differ, the paper's claims about the numbers decided on
this run's numbers (:mod:`advsr.reproduce.claims`), and the figures re-drawn from the store.

The JSON document (``--json``) and the HTML report hold the same content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advsr.engine.cell import EXPERIMENTS, stored_figures
from advsr.engine.store import ResultStore
from advsr.report import Figure, Plot, ReportTable, fmt
from advsr.reproduce.claims import judge
from advsr.reproduce.engine import Resources, TableRun, row_labels, table_values
from advsr.reproduce.spec import PaperSpec, Published

__all__ = ["paper_document", "paper_figures", "paper_tables"]

CELL_LEGEND = "each cell: ours [paper, ours - paper]; '-': not computed"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _layout(
    tr: TableRun, values: Mapping[tuple[str, str], Any]
) -> tuple[list[str], list[str], dict[str, str], list[str]]:
    """A table's rows and columns, in order (the measured cells', the stored values', the
    published numbers'), the rows left out (row -> why) and, for a summary table, the
    columns left out (``"column: why"``)."""
    t = tr.table
    rows, cols = [], []
    missing: dict[str, str] = {}
    gaps = []  # summary tables: whole columns left out
    for cell in tr.measured:
        if t.value == "summary":
            col = " / ".join(str(cell.labels.get(k, "")) for k in t.cols)
            cols.append(col)
            if cell.missing is not None:
                gaps.append(f"{col}: {cell.missing}")
            continue
        for rl in row_labels(t, cell):
            rows.append(rl)
            if cell.missing is not None:
                missing.setdefault(rl, cell.missing)
    rows += [r for r, _ in values] + [p.row for p in t.published]
    ours_cols = [c for _, c in values]
    pub_cols = [p.col for p in t.published]
    cols += pub_cols + ours_cols if t.col_order == "published" else ours_cols + pub_cols
    return _unique(rows), _unique(cols), missing, gaps


def _doc_cells(
    rows: list[str],
    cols: list[str],
    values: Mapping[tuple[str, str], Mapping[str, Any]],
    published: Mapping[tuple[str, str], Published],
) -> list[dict[str, Any]]:
    """The filled cells of a table, row by row: ours beside the paper's number and the
    difference (cells with neither are left out)."""
    cells = []
    for r in rows:
        for c in cols:
            v = values.get((r, c), {})
            p = published.get((r, c))
            ours = v.get("value")
            if ours is None and p is None:
                continue
            cells.append(
                {
                    "row": r,
                    "col": c,
                    "ours": ours,
                    "n": v.get("n"),
                    "x": v.get("x"),
                    "published": p.value if p else None,
                    "source": p.source if p else None,
                    "difference": ours - p.value if ours is not None and p else None,
                    "flags": v.get("flags", []),
                }
            )
    return cells


def _table_doc(tr: TableRun, store: ResultStore | None, res: Resources) -> dict[str, Any]:
    t = tr.table
    values = table_values(tr, store)
    published = {(p.row, p.col): p for p in t.published}
    rows, cols, missing, gaps = _layout(tr, values)
    cells = _doc_cells(rows, cols, values, published)
    every = [c for stage in tr.stages for c in stage]
    notes = _unique([n for cell in every for n in cell.notes] + gaps)
    images = sorted({v["n"] for v in values.values() if v.get("n")})
    return {
        "id": t.id,
        "title": t.title,
        "source": t.source,
        "rows_are": " / ".join(k.lstrip("_") for k in t.rows),
        "cols_are": " / ".join(k.lstrip("_") for k in t.cols),
        "unit": t.unit,
        "digits": t.digits,
        "rows": rows,
        "cols": cols,
        "cells": cells,
        "missing": missing,
        "images": images,
        "stand_ins": notes,
        "why": list(t.why),
        "claims": [],
        "size": res.size,
    }


def _judge_claims(tables: list[TableRun], docs: list[dict[str, Any]]) -> None:
    """Fill each table's ``claims``: every claim decided on the run's own tables."""
    by_id = {d["id"]: d for d in docs}
    for tr, doc in zip(tables, docs, strict=True):
        doc["claims"] = [judge(c, by_id, tr.table.id) for c in tr.table.claims]


def paper_document(
    paper: PaperSpec, tables: list[TableRun], store: ResultStore | None, res: Resources
) -> dict[str, Any]:
    """The whole reproduction as JSON-ready data."""
    docs = [_table_doc(tr, store, res) for tr in tables]
    _judge_claims(tables, docs)
    unique = {run.cell_id: run for tr in tables for _, run in tr.runs}
    return {
        "paper": paper.key,
        "title": paper.title,
        "citation": paper.citation,
        "reproduces": paper.reproduces,
        "size": res.size,
        "protocol": paper.protocol,
        "data_given": dict(res.data),
        "weights_given": dict(res.weights),
        "cells": len(unique),
        "computed": sum(r.computed for r in unique.values()),
        "from_store": sum(r.from_store for r in unique.values()),
        "tables": docs,
        "figures": [
            {"id": f.id, "title": f.title, "source": f.source, "kind": f.kind, "table": f.table}
            for f in paper.figures
        ],
        "notes": list(paper.notes),
        "legend": CELL_LEGEND,
    }


def _cell_text(cell: dict[str, Any] | None, digits: int) -> str:
    from advsr.attacks.probes import FLAG_MARK

    if cell is None:
        return "-"
    ours = fmt(cell["ours"], digits) if cell["ours"] is not None else "-"
    ours += FLAG_MARK if cell.get("flags") else ""
    if cell["published"] is None:
        return ours
    pub = f"{cell['published']:g}"
    if cell["difference"] is None:
        return f"{ours} [{pub}]"
    return f"{ours} [{pub}, {cell['difference']:+.{digits}f}]"


def paper_tables(doc: dict[str, Any]) -> list[ReportTable]:
    """One table per reproduced table; the notes (images, stand-ins, why, the claims as far
    as the run's numbers support them) under it."""
    out = []
    for t in doc["tables"]:
        by = {(c["row"], c["col"]): c for c in t["cells"]}
        body = []
        for r in t["rows"]:
            if r in t["missing"] and not any(by.get((r, c), {}).get("ours") for c in t["cols"]):
                cells = [_cell_text(by.get((r, c)), t["digits"]) for c in t["cols"]]
                body.append([r, *cells, t["missing"][r]])
                continue
            body.append([r, *(_cell_text(by.get((r, c)), t["digits"]) for c in t["cols"])])
        has_missing = any(len(row) > len(t["cols"]) + 1 for row in body)
        body = [row + [""] * (has_missing and len(row) == len(t["cols"]) + 1) for row in body]
        header = [f"{t['rows_are']} \\ {t['cols_are']}" if t["cols_are"] else t["rows_are"]]
        header += t["cols"] + (["note"] if has_missing else [])
        unit = f" ({t['unit']})" if t["unit"] else ""
        source = f" - paper {t['source']}" if t["source"] else ""
        images = ", ".join(str(n) for n in t["images"]) or "0"
        legend = f"{CELL_LEGEND}; " if any(c["published"] is not None for c in t["cells"]) else ""
        flagged = [
            f"* {c['row']} / {c['col']}: {f['flag']} ({f['evidence']})"
            for c in t["cells"]
            for f in c.get("flags", [])
        ]
        notes = [
            f"{legend}images per cell: {images}",
            *t["stand_ins"],
            *(f"why it may differ: {w}" for w in t["why"]),
            *(c["line"] for c in t.get("claims", []) if c["line"]),
            *flagged,
        ]
        out.append(ReportTable(f"{t['title']}{unit}{source}", header, body, notes))
    return out


def paper_figures(
    paper: PaperSpec, doc: dict[str, Any], tables: list[TableRun], store: ResultStore | None
) -> tuple[list[Any], list[Figure]]:
    """The figures: line plots from table values, image grids from stored artefacts."""
    by_id = {t["id"]: t for t in doc["tables"]}
    runs = {tr.table.id: tr for tr in tables}
    plots: list[Any] = []
    scatter: list[Any] = []
    figures: list[Figure] = []
    for f in paper.figures:
        t = by_id[f.table]
        if f.kind == "line":
            series = []
            for r in t["rows"]:
                pts = [
                    (c["x"], c["ours"])
                    for c in t["cells"]
                    if c["row"] == r and c["x"] is not None and c["ours"] is not None
                ]
                if pts:
                    series.append((r, sorted(pts)))
            ys = [y for _, pts in series for _, y in pts]
            ylim = (min(ys), max(ys)) if ys and min(ys) < max(ys) else None
            title = f"{f.title} (paper {f.source})" if f.source else f.title
            plots.append(Plot(title, f.xlabel, f.ylabel, series, ylim))
            continue
        cells = [run for _, run in runs[f.table].runs]
        if not cells:
            continue
        if f.kind == "images":
            table = runs[f.table].table
            for cell, run in runs[f.table].runs:
                label = " / ".join(row_labels(table, cell))
                for fig in stored_figures([run], store):
                    figures.append(Figure(f"{f.title}: {label}, {fig.title}", fig.images))
            continue
        exp = EXPERIMENTS.get(cells[0].experiment)
        summary = exp.summarise(cells, store)
        if f.kind == "experiment":
            parts = exp.report_parts(summary, cells, store)
            plots += [p for p in parts.plots if isinstance(p, Plot)]
            scatter += [p for p in parts.plots if not isinstance(p, Plot)]
            figures += [Figure(f"{f.title}: {g.title}", g.images) for g in parts.figures]
            continue
        entries = summary.get(f.path, [])
        names = list(dict.fromkeys(k for e in entries for k in e.get(f.curves, {})))
        for name in names:
            series = [
                (str(e.get(f.series, "")), [tuple(p) for p in e[f.curves].get(name, [])])
                for e in entries
            ]
            title = f"{f.title}: {name}" + (f" (paper {f.source})" if f.source else "")
            plots.append(Plot(title, f.xlabel, name, series, None))
    return plots + scatter, figures
