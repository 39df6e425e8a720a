"""Tables over the result store: pivots of stored rows, labels of their keys.

:func:`store_table` is the store's pivot: the mean of one metric over items, by one
setting (and another for columns), never mixing cells whose settings differ elsewhere.

Example:
    >>> from advsr.engine.store import ResultStore
    >>> store = ResultStore(":memory:")
    >>> cid = store.begin_cell("demo", {"model": "bicubic", "scale": 2}, ["a.png"])
    >>> store.add_row(cid, 0, "a.png", "a", {"psnr": 30.0}, seconds=0.1)
    True
    >>> store_table(store, rows="model", cols="scale", value="psnr").values
    [[30.0]]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from advsr.engine.store import ResultStore, flatten
from advsr.errors import InputError
from advsr.jsonutil import json_safe

__all__ = ["Table", "label_value", "pivot", "store_table"]


def store_table(
    store: ResultStore,
    *,
    rows: str,
    value: str,
    cols: str | None = None,
    experiment: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> Table:
    """Pivot: mean of ``value`` over items, by ``rows`` (and ``cols``), never mixing cells
    whose settings differ elsewhere (see :func:`pivot`).

    Raises:
        InputError: a parameter or metric name that no stored row has.
    """
    data = store.rows(experiment=experiment, where=where)
    idents = {c["cell_id"]: c["identity"] for c in store.cells(experiment)}
    return pivot(data, rows=rows, cols=cols, value=value, identities=idents)


_PER_ROW = {"cell_id", "idx", "key", "image", "seconds"}


@dataclass
class Table:
    """A pivot of the store: mean of ``value`` over items for each (row key, column key).

    Attributes:
        rows: the parameter on the rows.
        cols: the parameter on the columns (``None`` for a single column).
        value: the metric averaged.
        split_by: settings that differ between the cells behind one (row, column) entry;
            they become extra row dimensions, so no entry averages unlike cells.
        row_keys: row labels in first-seen order: ``(rows value, *split_by values)``.
        col_keys: column labels in first-seen order.
        values: ``values[i][j]`` mean, or ``None`` where no item was stored.
        counts: number of items behind each mean.
    """

    rows: str
    cols: str | None
    value: str
    split_by: list[str] = field(default_factory=list)
    row_keys: list[tuple[Any, ...]] = field(default_factory=list)
    col_keys: list[Any] = field(default_factory=list)
    values: list[list[float | None]] = field(default_factory=list)
    counts: list[list[int]] = field(default_factory=list)

    def row_label(self, i: int) -> str:
        """``bicubic`` or ``bicubic [y_channel=False, crop_border=0]``."""
        key = self.row_keys[i]
        head = label_value(self.rows, key[0])
        if not self.split_by:
            return head
        extra = ", ".join(
            f"{k}={label_value(k, v)}" for k, v in zip(self.split_by, key[1:], strict=True)
        )
        return f"{head} [{extra}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``inf``/``nan`` become strings)."""
        return json_safe(
            {
                "rows": self.rows,
                "cols": self.cols,
                "value": self.value,
                "split_by": self.split_by,
                "row_keys": [list(k) for k in self.row_keys],
                "row_labels": [self.row_label(i) for i in range(len(self.row_keys))],
                "col_keys": self.col_keys,
                "col_labels": [label_value(self.cols or "", c) for c in self.col_keys],
                "values": self.values,
                "counts": self.counts,
            }
        )


def label_value(key: str, value: Any) -> str:
    """A setting's value as people write it: budgets as ``8/255``, floats short, content
    hashes cut to 12 characters."""
    from advsr.attacks.budget import format_budget

    if isinstance(value, float) and key.split(".")[-1] in ("eps", "alpha"):
        return format_budget(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return str(value)


def _key(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def pivot(
    data: Iterable[Mapping[str, Any]],
    *,
    rows: str,
    value: str,
    cols: str | None = None,
    identities: Mapping[str, Mapping[str, Any]] | None = None,
) -> Table:
    """Mean of ``value`` grouped by ``rows`` x ``cols`` over flat rows (see
    :meth:`ResultStore.rows`), never averaging cells whose identities differ.

    Cells behind one (row, column) entry must have equal identities (the experiment
    included); every identity setting that differs between such cells becomes an extra row
    dimension (:attr:`Table.split_by`, dotted identity keys), shown in the row label.
    Without ``identities`` the rows' own fields (minus the metric) are compared.

    Raises:
        InputError: a parameter or metric name that no row has.
    """
    data = list(data)
    t = Table(rows=rows, cols=cols, value=value)
    if not data:
        return t
    keys = set().union(*(d.keys() for d in data))
    for name in (rows, cols, value):
        if name is not None and name not in keys:
            known = ", ".join(sorted(k for k in keys if k != "cell_id"))
            raise InputError(f"no stored field {name!r}; fields: {known}")
    ident = _cell_identities(data, identities, value)
    t.split_by = _split_keys(data, ident, rows, cols)
    sums: dict[tuple[Any, Any], list[float]] = {}
    for d in data:
        flat = ident[d["cell_id"]]
        rk = (_key(d.get(rows)), *(_key(flat.get(k)) for k in t.split_by))
        ck = _key(d.get(cols)) if cols else value
        if rk not in t.row_keys:
            t.row_keys.append(rk)
        if ck not in t.col_keys:
            t.col_keys.append(ck)
        v = d.get(value)
        if isinstance(v, int | float) and not isinstance(v, bool):
            sums.setdefault((rk, ck), []).append(float(v))
    for rk in t.row_keys:
        vals: list[float | None] = []
        cnts: list[int] = []
        for ck in t.col_keys:
            got = sums.get((rk, ck), [])
            vals.append(sum(got) / len(got) if got else None)
            cnts.append(len(got))
        t.values.append(vals)
        t.counts.append(cnts)
    return t


def _cell_identities(
    data: list[Mapping[str, Any]],
    identities: Mapping[str, Mapping[str, Any]] | None,
    value: str,
) -> dict[str, dict[str, Any]]:
    """Flattened identity (with the experiment) of every cell behind the rows."""
    out: dict[str, dict[str, Any]] = {}
    for d in data:
        cid = d["cell_id"]
        if cid in out:
            continue
        if identities is not None and cid in identities:
            flat = flatten(dict(identities[cid]))
        else:
            flat = {k: v for k, v in d.items() if k not in _PER_ROW and k != value}
        flat["experiment"] = d.get("experiment")
        out[cid] = flat
    return out


def _split_keys(
    data: list[Mapping[str, Any]],
    ident: Mapping[str, Mapping[str, Any]],
    rows: str,
    cols: str | None,
) -> list[str]:
    """Identity keys whose values differ between cells that share a (row, column) entry."""
    groups: dict[tuple[Any, Any], set[str]] = {}
    for d in data:
        groups.setdefault((_key(d.get(rows)), _key(d.get(cols)) if cols else None), set()).add(
            d["cell_id"]
        )
    split: list[str] = []
    for cids in groups.values():
        if len(cids) < 2:
            continue
        flats = [ident[c] for c in sorted(cids)]
        names = sorted(set().union(*(f.keys() for f in flats)))
        for name in names:
            if name in (rows, cols) or name in split:
                continue
            if len({_key(f.get(name)) for f in flats}) > 1:
                split.append(name)
    return split
