"""The SQLite result store: one row per image per experiment cell.

A *cell* is one point of an experiment grid (model x dataset x attack x budget x defense
...). It is identified by the SHA-256 of its full configuration (canonical JSON), so a
re-run finds what is already there: finished cells are skipped, and a cell interrupted half
way (crash, Ctrl-C, SIGKILL) resumes at the first image not yet written, because every row is
committed as soon as it is computed. The database runs in WAL mode.

Schema (``PRAGMA user_version = 1``)::

    cells(cell_id PK, experiment, config JSON, n_expected, created, finished)
    rows(cell_id, idx, image, metrics JSON, seconds, created, UNIQUE(cell_id, image))

Reports read the store only (:meth:`ResultStore.table`, :meth:`ResultStore.rows`).

Example:
    >>> store = ResultStore(":memory:")
    >>> cid = store.begin_cell("demo", {"model": "bicubic", "scale": 2}, n_expected=1)
    >>> store.add_row(cid, 0, "img", {"psnr": 30.0}, seconds=0.1)
    True
    >>> store.finish_cell(cid); store.is_finished(cid)
    True
    >>> store.table(rows="model", cols="scale", value="psnr").values
    [[30.0]]
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advsr.errors import InputError, StoreError
from advsr.jsonutil import from_json_number, json_safe

__all__ = ["ResultStore", "Table", "cell_id_of", "default_store_path"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id    TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    config     TEXT NOT NULL,
    n_expected INTEGER,
    created    REAL NOT NULL,
    finished   REAL
);
CREATE TABLE IF NOT EXISTS rows (
    cell_id  TEXT NOT NULL REFERENCES cells(cell_id),
    idx      INTEGER NOT NULL,
    image    TEXT NOT NULL,
    metrics  TEXT NOT NULL,
    seconds  REAL NOT NULL,
    created  REAL NOT NULL,
    UNIQUE (cell_id, image)
);
CREATE INDEX IF NOT EXISTS rows_by_cell ON rows(cell_id, idx);
CREATE INDEX IF NOT EXISTS cells_by_experiment ON cells(experiment);
"""


def default_store_path() -> Path:
    """``$ADVSR_STORE`` if set, else ``advsr-results.sqlite`` in the working directory."""
    return Path(os.environ.get("ADVSR_STORE", "advsr-results.sqlite"))


def _canonical(config: Mapping[str, Any]) -> str:
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cell configuration is not plain JSON data: {exc}") from None


def cell_id_of(experiment: str, config: Mapping[str, Any]) -> str:
    """Stable identifier of a cell: SHA-256 of the experiment name and canonical config."""
    return hashlib.sha256(f"{experiment}\n{_canonical(config)}".encode()).hexdigest()[:20]


@dataclass
class Table:
    """A pivot of the store: mean of ``value`` over images for each (row key, column key).

    Attributes:
        rows: the parameter on the rows.
        cols: the parameter on the columns (``None`` for a single column).
        value: the metric averaged.
        row_keys: row labels in first-seen order.
        col_keys: column labels in first-seen order.
        values: ``values[i][j]`` mean, or ``None`` where no image was stored.
        counts: number of images behind each mean.
    """

    rows: str
    cols: str | None
    value: str
    row_keys: list[Any] = field(default_factory=list)
    col_keys: list[Any] = field(default_factory=list)
    values: list[list[float | None]] = field(default_factory=list)
    counts: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``inf``/``nan`` become strings)."""
        return json_safe(
            {
                "rows": self.rows,
                "cols": self.cols,
                "value": self.value,
                "row_keys": self.row_keys,
                "col_keys": self.col_keys,
                "values": self.values,
                "counts": self.counts,
            }
        )


class ResultStore:
    """An SQLite file of experiment results (see the module docstring).

    Args:
        path: database file (created with its folder), or ``":memory:"``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if p.is_dir():
                raise StoreError(f"result store path is a folder: {p}")
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path} has result-store schema {version}; this advsr reads "
                    f"{SCHEMA_VERSION} (use another --store file)"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open result store {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def begin_cell(
        self, experiment: str, config: Mapping[str, Any], n_expected: int | None = None
    ) -> str:
        """Register a cell (idempotent) and return its id."""
        cid = cell_id_of(experiment, config)
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO cells(cell_id, experiment, config, n_expected, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (cid, experiment, _canonical(config), n_expected, time.time()),
            )
        return cid

    def add_row(
        self,
        cell_id: str,
        idx: int,
        image: str,
        metrics: Mapping[str, Any],
        seconds: float,
    ) -> bool:
        """Write one image's metrics and commit at once. Returns False if already there."""
        payload = json.dumps(json_safe(dict(metrics)), sort_keys=True)
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO rows(cell_id, idx, image, metrics, seconds, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (cell_id, idx, image, payload, float(seconds), time.time()),
            )
        return cur.rowcount == 1

    def finish_cell(self, cell_id: str) -> None:
        """Mark a cell complete (all its images written)."""
        with self._db:
            self._db.execute(
                "UPDATE cells SET finished = ? WHERE cell_id = ?", (time.time(), cell_id)
            )

    # -- reading -------------------------------------------------------------------------
    def is_finished(self, cell_id: str) -> bool:
        """Whether the cell exists and was marked finished."""
        row = self._db.execute("SELECT finished FROM cells WHERE cell_id = ?", (cell_id,))
        got = row.fetchone()
        return bool(got and got[0] is not None)

    def done_images(self, cell_id: str) -> set[str]:
        """Names of the images already stored for a cell."""
        cur = self._db.execute("SELECT image FROM rows WHERE cell_id = ?", (cell_id,))
        return {r[0] for r in cur}

    def cell_rows(self, cell_id: str) -> list[dict[str, Any]]:
        """One cell's rows in image order: ``image``, the metrics, ``seconds``."""
        cur = self._db.execute(
            "SELECT image, metrics, seconds FROM rows WHERE cell_id = ? ORDER BY idx", (cell_id,)
        )
        return [
            {
                "image": image,
                **{k: from_json_number(v) for k, v in json.loads(m).items()},
                "seconds": sec,
            }
            for image, m, sec in cur
        ]

    def cells(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """All cells (optionally of one experiment) with config, progress and state."""
        q = (
            "SELECT c.cell_id, c.experiment, c.config, c.n_expected, c.finished,"
            " (SELECT COUNT(*) FROM rows r WHERE r.cell_id = c.cell_id)"
            " FROM cells c"
        )
        args: tuple[Any, ...] = ()
        if experiment is not None:
            q += " WHERE c.experiment = ?"
            args = (experiment,)
        q += " ORDER BY c.created"
        out = []
        for cid, exp, cfg, n_exp, fin, n in self._db.execute(q, args):
            out.append(
                {
                    "cell_id": cid,
                    "experiment": exp,
                    "config": json.loads(cfg),
                    "n_expected": n_exp,
                    "n_rows": n,
                    "finished": fin is not None,
                }
            )
        return out

    def rows(
        self,
        *,
        experiment: str | None = None,
        cell_id: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Flat rows: the cell's parameters, then ``image``, ``idx``, metrics, ``seconds``.

        Args:
            experiment: keep one experiment.
            cell_id: keep one cell.
            where: keep rows whose parameters equal these values.
        """
        q = (
            "SELECT c.cell_id, c.experiment, c.config, r.idx, r.image, r.metrics, r.seconds"
            " FROM rows r JOIN cells c ON c.cell_id = r.cell_id"
        )
        conds, args = [], []
        if experiment is not None:
            conds.append("c.experiment = ?")
            args.append(experiment)
        if cell_id is not None:
            conds.append("c.cell_id = ?")
            args.append(cell_id)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        q += " ORDER BY c.created, r.idx"
        out = []
        for cid, exp, cfg, idx, image, metrics, seconds in self._db.execute(q, args):
            row: dict[str, Any] = {"cell_id": cid, "experiment": exp}
            row.update(_flatten(json.loads(cfg)))
            row.update({"idx": idx, "image": image})
            row.update(_load_metrics(metrics))
            row["seconds"] = seconds
            if where and any(row.get(k) != v for k, v in where.items()):
                continue
            out.append(row)
        return out

    def table(
        self,
        *,
        rows: str,
        value: str,
        cols: str | None = None,
        experiment: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> Table:
        """Pivot: mean of ``value`` over images, by ``rows`` (and ``cols``) parameter.

        Raises:
            InputError: a parameter or metric name that no stored row has.
        """
        data = self.rows(experiment=experiment, where=where)
        return pivot(data, rows=rows, cols=cols, value=value)


def pivot(
    data: Iterable[Mapping[str, Any]], *, rows: str, value: str, cols: str | None = None
) -> Table:
    """Mean of ``value`` grouped by ``rows`` x ``cols`` over flat rows (see :meth:`rows`)."""
    data = list(data)
    t = Table(rows=rows, cols=cols, value=value)
    if not data:
        return t
    keys = set().union(*(d.keys() for d in data))
    for name in (rows, cols, value):
        if name is not None and name not in keys:
            known = ", ".join(sorted(k for k in keys if k not in ("cell_id",)))
            raise InputError(f"no stored field {name!r}; fields: {known}")
    sums: dict[tuple[Any, Any], list[float]] = {}
    for d in data:
        rk = _key(d.get(rows))
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


def _load_metrics(text: str) -> dict[str, Any]:
    return {k: from_json_number(v) for k, v in json.loads(text).items()}


def _key(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
