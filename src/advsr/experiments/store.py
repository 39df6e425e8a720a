"""The SQLite result store: one row per item per experiment cell, written by the driver only.

A *cell* is one point of an experiment grid. It is identified by the SHA-256 of its
experiment name and its *identity* (the config with result-neutral settings removed, weights
and data replaced by content hashes: :func:`advsr.experiments.cell.cell_identity`), so a
re-run finds what is already there. Each row is keyed by the item's identity in its dataset
(its relative path, or an explicit index), never by a stem two files can share, and is
committed as soon as it is computed: a cell interrupted half way (crash, Ctrl-C, SIGKILL)
resumes at the first missing item. A cell is finished only when every expected key is
stored. Artefacts (figures, a universal perturbation) are stored beside the rows, so
reports are rebuilt from the store alone. The database runs in WAL mode.

Schema (``PRAGMA user_version = 2``)::

    cells(cell_id PK, experiment, identity JSON, config JSON, info JSON, expected JSON,
          created, finished)
    rows(cell_id, idx, key, image, metrics JSON, seconds, created, UNIQUE(cell_id, key))
    artifacts(cell_id, name, media_type, data BLOB, created, UNIQUE(cell_id, name))

Example:
    >>> store = ResultStore(":memory:")
    >>> cid = store.begin_cell("demo", {"model": "bicubic", "scale": 2}, ["a.png"])
    >>> store.add_row(cid, 0, "a.png", "a", {"psnr": 30.0}, seconds=0.1)
    True
    >>> store.finish_cell(cid), store.is_finished(cid)
    (True, True)
    >>> store.table(rows="model", cols="scale", value="psnr").values
    [[30.0]]
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advsr.errors import InputError, StoreError
from advsr.jsonutil import from_json_number, json_safe

__all__ = [
    "SCHEMA_VERSION",
    "ResultStore",
    "Table",
    "cell_id_of",
    "default_store_path",
    "flatten",
    "pivot",
    "store_session",
]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id    TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    identity   TEXT NOT NULL,
    config     TEXT NOT NULL,
    info       TEXT NOT NULL,
    expected   TEXT NOT NULL,
    created    REAL NOT NULL,
    finished   REAL
);
CREATE TABLE IF NOT EXISTS rows (
    cell_id  TEXT NOT NULL REFERENCES cells(cell_id),
    idx      INTEGER NOT NULL,
    key      TEXT NOT NULL,
    image    TEXT NOT NULL,
    metrics  TEXT NOT NULL,
    seconds  REAL NOT NULL,
    created  REAL NOT NULL,
    UNIQUE (cell_id, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    cell_id    TEXT NOT NULL REFERENCES cells(cell_id),
    name       TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data       BLOB NOT NULL,
    created    REAL NOT NULL,
    UNIQUE (cell_id, name)
);
CREATE INDEX IF NOT EXISTS rows_by_cell ON rows(cell_id, idx);
CREATE INDEX IF NOT EXISTS cells_by_experiment ON cells(experiment);
"""


def default_store_path() -> Path:
    """``$ADVSR_STORE`` if set, else ``advsr-results.sqlite`` in the working directory."""
    return Path(os.environ.get("ADVSR_STORE", "advsr-results.sqlite"))


@contextmanager
def store_session(path: str | os.PathLike[str]) -> Iterator[ResultStore]:
    """The store at ``path`` for one run; when the run fails and the store was created by
    it and holds no cell, the file is removed again (a refused run leaves nothing on disk)."""
    p = Path(path)
    fresh = str(path) != ":memory:" and not p.exists()
    store = ResultStore(path)
    try:
        yield store
    except BaseException:
        empty = fresh and not store.cells()
        store.close()
        if empty:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{p}{suffix}").unlink(missing_ok=True)
        raise
    store.close()


def canonical(config: Mapping[str, Any]) -> str:
    """Canonical JSON of a config (sorted keys, no NaN): the text that is hashed."""
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cell configuration is not plain JSON data: {exc}") from None


def cell_id_of(experiment: str, identity: Mapping[str, Any]) -> str:
    """Stable identifier of a cell: SHA-256 of the experiment name and canonical identity."""
    return hashlib.sha256(f"{experiment}\n{canonical(identity)}".encode()).hexdigest()[:20]


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _loads(text: str) -> Any:
    return json.loads(text)


def _metrics(text: str) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return [conv(x) for x in v]
        return from_json_number(v)

    return {k: conv(v) for k, v in json.loads(text).items()}


def _filter(experiment: str | None, cell_id: str | None) -> tuple[str, list[str]]:
    """A ``WHERE`` clause on the cells table ``c`` and its arguments."""
    conds, args = [], []
    for column, value in (("experiment", experiment), ("cell_id", cell_id)):
        if value is not None:
            conds.append(f"c.{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(conds) if conds else ""), args


class ResultStore:
    """An SQLite file of experiment results (see the module docstring).

    Args:
        path: database file, or ``":memory:"``. Its folder must exist (nothing is created
            above the file itself).

    Raises:
        StoreError: the file is not a store, a store of another schema, a folder, or cannot
            be created.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            self.check_path(self.path)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            if version not in (0, SCHEMA_VERSION) or (version == 0 and "cells" in tables):
                raise StoreError(
                    f"{self.path} was written with result-store schema {version or 1}; this "
                    f"advsr reads schema {SCHEMA_VERSION} (use another --store file)"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open result store {self.path}: {exc}") from None

    @staticmethod
    def check_path(path: str | os.PathLike[str]) -> None:
        """Refuse a store path that cannot hold a store, without creating anything.

        Raises:
            StoreError: a folder, or a file whose folder does not exist.
        """
        p = Path(path)
        if p.is_dir():
            raise StoreError(f"result store path is a folder: {p}")
        if not p.parent.is_dir():
            raise StoreError(f"the folder of the result store does not exist: {p.parent}")
        if p.exists() and not p.is_file():
            raise StoreError(f"result store path is not a regular file: {p}")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def begin_cell(
        self,
        experiment: str,
        identity: Mapping[str, Any],
        expected: Sequence[str],
        *,
        config: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> str:
        """Register a cell (idempotent) with the keys of its expected rows; return its id.

        Raises:
            StoreError: the same cell was registered before with other expected keys (the
                data changed under the same fingerprint).
        """
        cid = cell_id_of(experiment, identity)
        keys = list(expected)
        if len(set(keys)) != len(keys):
            raise StoreError(f"cell {cid}: the expected item keys are not unique")
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO cells(cell_id, experiment, identity, config, info, "
                "expected, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    experiment,
                    canonical(identity),
                    json.dumps(json_safe(dict(config or identity)), sort_keys=True),
                    json.dumps(json_safe(dict(info or {})), sort_keys=True),
                    json.dumps(keys),
                    time.time(),
                ),
            )
        stored = self.expected_keys(cid)
        if stored != keys:
            raise StoreError(
                f"cell {cid} of {experiment} was started with {len(stored)} items and now has "
                f"{len(keys)}: its data changed; use another --store file"
            )
        return cid

    def add_row(
        self,
        cell_id: str,
        idx: int,
        key: str,
        image: str,
        metrics: Mapping[str, Any],
        seconds: float,
    ) -> bool:
        """Write one item's metrics and commit at once. Returns False if already there."""
        payload = json.dumps(json_safe(dict(metrics)), sort_keys=True)
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO rows(cell_id, idx, key, image, metrics, seconds, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cell_id, idx, key, image, payload, float(seconds), time.time()),
            )
        return cur.rowcount == 1

    def put_artifact(self, cell_id: str, name: str, data: bytes, media_type: str) -> None:
        """Store (or replace) a named artefact of a cell: a PNG figure, a tensor file..."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO artifacts(cell_id, name, media_type, data, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (cell_id, name, media_type, sqlite3.Binary(data), time.time()),
            )

    def finish_cell(self, cell_id: str) -> bool:
        """Mark a cell complete if every expected key is stored; returns whether it is."""
        missing = set(self.expected_keys(cell_id)) - self.done_keys(cell_id)
        if missing:
            return False
        with self._db:
            self._db.execute(
                "UPDATE cells SET finished = ? WHERE cell_id = ? AND finished IS NULL",
                (time.time(), cell_id),
            )
        return True

    # -- reading -------------------------------------------------------------------------
    def has_cell(self, cell_id: str) -> bool:
        """Whether a cell of this id was registered."""
        got = self._db.execute("SELECT 1 FROM cells WHERE cell_id = ?", (cell_id,))
        return got.fetchone() is not None

    def is_finished(self, cell_id: str) -> bool:
        """Whether the cell exists and was marked finished."""
        got = self._db.execute("SELECT finished FROM cells WHERE cell_id = ?", (cell_id,))
        row = got.fetchone()
        return bool(row and row[0] is not None)

    def expected_keys(self, cell_id: str) -> list[str]:
        """The keys of the rows a cell must have."""
        row = self._db.execute("SELECT expected FROM cells WHERE cell_id = ?", (cell_id,))
        got = row.fetchone()
        return list(_loads(got[0])) if got else []

    def done_keys(self, cell_id: str) -> set[str]:
        """Keys of the rows already stored for a cell."""
        cur = self._db.execute("SELECT key FROM rows WHERE cell_id = ?", (cell_id,))
        return {r[0] for r in cur}

    def cell(self, cell_id: str) -> dict[str, Any]:
        """One cell's record: experiment, identity, config, info, counts, finished.

        Raises:
            StoreError: no such cell.
        """
        got = self.cells(cell_id=cell_id)
        if not got:
            raise StoreError(f"no cell {cell_id} in {self.path}")
        return got[0]

    def cell_rows(self, cell_id: str) -> list[dict[str, Any]]:
        """One cell's rows in item order: ``key``, ``image``, the metrics, ``seconds``."""
        cur = self._db.execute(
            "SELECT key, image, metrics, seconds FROM rows WHERE cell_id = ? ORDER BY idx",
            (cell_id,),
        )
        return [
            {"key": key, "image": image, **_metrics(m), "seconds": sec}
            for key, image, m, sec in cur
        ]

    def artifacts(self, cell_id: str) -> dict[str, tuple[str, bytes]]:
        """A cell's artefacts: name -> (media type, bytes), in creation order."""
        cur = self._db.execute(
            "SELECT name, media_type, data FROM artifacts WHERE cell_id = ? ORDER BY created",
            (cell_id,),
        )
        return {name: (mt, bytes(data)) for name, mt, data in cur}

    def cells(
        self, experiment: str | None = None, *, cell_id: str | None = None
    ) -> list[dict[str, Any]]:
        """All cells (optionally of one experiment) with config, identity, progress, state."""
        q = (
            "SELECT c.cell_id, c.experiment, c.identity, c.config, c.info, c.expected,"
            " c.finished, (SELECT COUNT(*) FROM rows r WHERE r.cell_id = c.cell_id)"
            " FROM cells c"
        )
        where, args = _filter(experiment, cell_id)
        q += where + " ORDER BY c.created, c.rowid"
        out = []
        for cid, exp, ident, cfg, info, expected, fin, n in self._db.execute(q, args):
            out.append(
                {
                    "cell_id": cid,
                    "experiment": exp,
                    "identity": _loads(ident),
                    "config": _loads(cfg),
                    "info": _loads(info),
                    "expected": len(_loads(expected)),
                    "stored": n,
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
        """Flat rows: the cell's config (dotted keys), then ``key``, ``image``, metrics.

        Args:
            experiment: keep one experiment.
            cell_id: keep one cell.
            where: keep rows whose config values (or metrics) equal these values.
        """
        q = (
            "SELECT c.cell_id, c.experiment, c.config, r.idx, r.key, r.image, r.metrics,"
            " r.seconds FROM rows r JOIN cells c ON c.cell_id = r.cell_id"
        )
        filt, args = _filter(experiment, cell_id)
        q += filt + " ORDER BY c.created, c.rowid, r.idx"
        out = []
        for cid, exp, cfg, idx, key, image, metrics, seconds in self._db.execute(q, args):
            row: dict[str, Any] = {"cell_id": cid, "experiment": exp}
            row.update(flatten(_loads(cfg)))
            row.update({"idx": idx, "key": key, "image": image})
            row.update(_metrics(metrics))
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
        """Pivot: mean of ``value`` over items, by ``rows`` (and ``cols``), never mixing cells
        whose settings differ elsewhere (see :func:`pivot`).

        Raises:
            InputError: a parameter or metric name that no stored row has.
        """
        data = self.rows(experiment=experiment, where=where)
        idents = {c["cell_id"]: c["identity"] for c in self.cells(experiment)}
        return pivot(data, rows=rows, cols=cols, value=value, identities=idents)


# ------------------------------------------------------------------------------ pivots

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
    from advsr.attacks.base import format_budget

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
