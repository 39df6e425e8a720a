"""What ``advsr results`` shows: the store's cells with the settings that tell them apart,
and pivot tables.

Example:
    >>> from advsr.engine.driver import run_cells
    >>> st = ResultStore(":memory:")
    >>> _ = run_cells([("eval-sr", {"scale": s, "hr_crop": 32}) for s in (2, 4)], st,
    ...               progress=False)
    >>> doc, table = cell_listing(st)
    >>> doc["varying"]
    ['crop_border', 'scale']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from advsr.engine.store import ResultStore, flatten
from advsr.engine.tables import Table, label_value
from advsr.report import ReportTable, fmt

__all__ = ["cell_listing", "pivot_table", "varying_settings"]


def varying_settings(cells: list[dict[str, Any]]) -> list[str]:
    """Identity settings (dotted keys) whose values differ between the cells."""
    flats = [{"experiment": c["experiment"], **flatten(c["identity"])} for c in cells]
    if len(flats) < 2:
        return []
    names = list(dict.fromkeys(k for f in flats for k in f))
    return [
        k
        for k in names
        if k != "version" and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1
    ]


def _shown(cell: dict[str, Any], key: str) -> Any:
    """A setting's value as the user wrote it when the config has it, else the identity's."""
    if key == "experiment":
        return cell["experiment"]
    cfg = flatten(cell["config"])
    return cfg[key] if key in cfg else flatten(cell["identity"]).get(key)


def cell_listing(
    store: ResultStore, experiment: str | None = None, where: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], ReportTable]:
    """The cells (of one experiment, matching ``where`` on their config) with every setting
    that distinguishes them, their row counts and state."""
    cells = [
        c
        for c in store.cells(experiment)
        if not where or all(flatten(c["config"]).get(k) == v for k, v in where.items())
    ]
    varying = varying_settings(cells)
    body = [
        [
            c["cell_id"][:10],
            c["experiment"],
            str(c["info"].get("title", "")),
            *(label_value(k, _shown(c, k)) for k in varying),
            f"{c['stored']}/{c['expected']}",
            "yes" if c["finished"] else "no",
        ]
        for c in cells
    ]
    table = ReportTable(
        "result store cells", ["cell", "experiment", "what", *varying, "rows", "finished"], body
    )
    return {"cells": cells, "varying": varying}, table


def pivot_table(t: Table) -> ReportTable:
    """A pivot as a table: row labels (with the settings that split them), the column keys
    as people write them, means with their item counts."""
    title = f"mean {t.value} by {t.rows}" + (f" x {t.cols}" if t.cols else "")
    if t.split_by:
        title += f" (rows split by {', '.join(t.split_by)}: those cells differ)"
    header = [t.rows, *(label_value(t.cols or "", c) for c in t.col_keys)]
    body = [
        [
            t.row_label(i),
            *(
                f"{fmt(v)} (n={n})" if v is not None else "-"
                for v, n in zip(vals, cnts, strict=True)
            ),
        ]
        for i, (vals, cnts) in enumerate(zip(t.values, t.counts, strict=True))
    ]
    return ReportTable(title, header, body)
