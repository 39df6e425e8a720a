"""The SQLite result store: one row per item per experiment cell, written by the driver only.

A *cell* is one point of an experiment grid. It is identified by the SHA-256 of its
experiment name and its *identity* (the config with result-neutral settings removed, weights
and data replaced by content hashes: :func:`advsr.engine.cell.cell_identity`), so a
re-run finds what is already there. Each row is keyed by the item's identity in its dataset
(its relative path, or an explicit index), never by a stem two files can share, and is
committed as soon as it is computed: a cell interrupted half way (crash, Ctrl-C, SIGKILL)
resumes at the first missing item. A cell is finished only when every expected key is
stored. Artefacts (figures, a universal perturbation) are stored beside the rows, so
reports are rebuilt from the store alone. The database runs in WAL mode.

Schema (``PRAGMA application_id`` = :data:`APPLICATION_ID`, ``PRAGMA user_version = 2``)::

    cells(cell_id PK, experiment, identity JSON, config JSON, info JSON, expected JSON,
          created, finished)
    rows(cell_id, idx, key, image, metrics JSON, seconds, created, UNIQUE(cell_id, key))
    artifacts(cell_id, name, media_type, data BLOB, created, UNIQUE(cell_id, name))

A file is opened for what it is, and nothing that is not a sound store is ever written:

* a folder, a file that is not SQLite, or an SQLite database of another program (no
  application id and no advsr tables) is refused (:class:`~advsr.errors.NotAStoreError`);
  a store written before the application id existed (advsr's tables, schema 2) is read as
  one and marked the first time it is opened for writing;
* a damaged store (a malformed page, a stored JSON value that does not parse, one of
  advsr's tables or columns missing) is refused when the damage is met
  (:class:`~advsr.errors.StoreDamagedError`); nothing is repaired or recreated;
* a read-only store (file mode, folder mode, read-only mount) is read through a read-only
  (or, if SQLite cannot even open it so, immutable) connection; opening it for writing is
  refused up front (:class:`~advsr.errors.StoreReadOnlyError`).

Example:
    >>> store = ResultStore(":memory:")
    >>> cid = store.begin_cell("demo", {"model": "bicubic", "scale": 2}, ["a.png"])
    >>> store.add_row(cid, 0, "a.png", "a", {"psnr": 30.0}, seconds=0.1)
    True
    >>> store.finish_cell(cid), store.is_finished(cid)
    (True, True)
    >>> store.rows()[0]["psnr"]
    30.0

Pivots and labels over stored rows are :mod:`advsr.engine.tables`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from advsr.errors import (
    InputError,
    NotAStoreError,
    StoreDamagedError,
    StoreError,
    StoreReadOnlyError,
    brief,
)
from advsr.jsonutil import from_json_number, json_safe

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "ResultStore",
    "cell_id_of",
    "default_store_path",
    "flatten",
    "store_session",
]

SCHEMA_VERSION = 2
APPLICATION_ID = int.from_bytes(b"ADSR", "big")
"""``PRAGMA application_id`` of an advsr result store (the bytes ``ADSR``)."""

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

# a new store is created in one transaction (tables and marker together), before WAL mode
# is switched on: a crash leaves either an empty file or a whole store
_CREATE = (
    f"BEGIN;\n{_SCHEMA}PRAGMA application_id = {APPLICATION_ID};\n"
    f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;\n"
)

_COLUMNS = {
    "cells": ("cell_id", "experiment", "identity", "config", "info", "expected", "created"),
    "rows": ("cell_id", "idx", "key", "image", "metrics", "seconds", "created"),
    "artifacts": ("cell_id", "name", "media_type", "data", "created"),
}

_MAGIC = b"SQLite format 3\x00"

_P = ParamSpec("_P")
_R = TypeVar("_R")
_Kind = Literal["fresh", "unmarked", "marked"]


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


# ----------------------------------------------------------------- opening a store file


class _Damage(Exception):
    """A stored value that does not parse; :func:`_translated` names the file."""


def _damaged(name: str, what: str) -> StoreDamagedError:
    return StoreDamagedError(
        f"result store {name} is damaged: {what}; advsr repairs nothing (restore a copy or "
        "pass another --store)"
    )


def _read_only(name: str, reason: str) -> StoreReadOnlyError:
    return StoreReadOnlyError(
        f"result store {name} is read-only ({reason}): `advsr results` and `advsr report` "
        "can read it, a command that computes cannot write to it (pass another --store)"
    )


def _store_error(name: str, exc: sqlite3.DatabaseError) -> StoreError:
    """The one-line error for an SQLite failure on the store ``name``."""
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    text = brief(exc)
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return _damaged(name, text)
    if text.startswith("Could not decode to UTF-8"):
        return _damaged(name, "a stored text is not valid UTF-8")
    if code.startswith("SQLITE_READONLY"):
        return _read_only(name, text)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(f"result store {name} is in use by another process ({text})")
    return StoreError(f"result store {name}: {text}")


@contextmanager
def _translated(name: str) -> Iterator[None]:
    """SQLite failures and unreadable stored values as one-line :class:`StoreError` s
    naming the store (a misuse of the connection stays a bug)."""
    try:
        yield
    except sqlite3.ProgrammingError:
        raise
    except sqlite3.DatabaseError as exc:
        raise _store_error(name, exc) from None
    except _Damage as exc:
        raise _damaged(name, str(exc)) from None


def _guarded(
    method: Callable[Concatenate[ResultStore, _P], _R],
) -> Callable[Concatenate[ResultStore, _P], _R]:
    """A store method whose SQLite failures and damaged values raise :class:`StoreError`."""

    @functools.wraps(method)
    def wrapper(self: ResultStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _translated(self.path):
            return method(self, *args, **kwargs)

    return wrapper


def _no_write(path: Path) -> bool:
    """Whether ``path`` (file or folder) cannot or must not be written: no write permission
    for this process, no write bit at all (honoured for root too), or a read-only mount."""
    try:
        mode = path.stat().st_mode
        mount_ro = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
    return mount_ro or not mode & 0o222 or not os.access(path, os.W_OK)


def _read_only_reason(p: Path) -> str | None:
    """Why the store file ``p`` (or the file it would be) cannot be written, or None."""
    if p.exists() and _no_write(p):
        return "the file is read-only"
    if _no_write(p.parent):
        return "its folder is read-only"
    return None


def _is_blank(p: Path) -> bool:
    """No file yet, or an empty one (SQLite's empty database)."""
    return not p.exists() or p.stat().st_size == 0


def _check_location(p: Path) -> None:
    """Refuse a path that cannot hold a store file, without creating anything."""
    if p.is_dir():
        raise NotAStoreError(f"{p} is a folder, not an advsr result store file")
    if not p.parent.is_dir():
        raise StoreError(f"the folder of the result store does not exist: {p.parent}")
    if p.exists() and not p.is_file():
        raise NotAStoreError(f"{p} is not a regular file, not an advsr result store")


def _check_magic(p: Path) -> None:
    """Refuse a non-empty file that does not start as an SQLite database does."""
    try:
        with p.open("rb") as fh:
            head = fh.read(len(_MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read result store {p}: {exc.strerror or exc}") from None
    if head != _MAGIC:
        raise NotAStoreError(f"{p} is not an advsr result store: it is not an SQLite database")


def _reader(p: Path) -> sqlite3.Connection:
    """A connection to ``p`` that never writes the file.

    Where the location is writable and no journal is beside the file, a ``query_only``
    connection (nothing to recover, and its close removes the WAL files it made); beside a
    journal, a read-only one (which reads the journal and recovers nothing); on a read-only
    location without a journal, or where SQLite cannot open it read-only (it needs a
    writable folder for the WAL index), an immutable one.
    """
    journal = any(Path(f"{p}{s}").exists() for s in ("-wal", "-journal"))
    if not journal and _read_only_reason(p) is None:
        db = sqlite3.connect(p, timeout=30.0)
        db.execute("PRAGMA query_only = ON")
        return db
    uri = p.absolute().as_uri()
    if journal:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if not str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_CANTOPEN"):
                raise
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _foreign(name: str, tables: list[str], version: int, app_id: int) -> NotAStoreError:
    """The error for an SQLite database that belongs to another program."""
    if app_id:
        what = f"application id {app_id:#010x}"
    elif tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        what = f"tables {shown}"
    else:
        what = "no tables"
    if version:
        what += f", schema {version}"
    return NotAStoreError(
        f"{name} is an SQLite database of another program ({what}), not an advsr result "
        "store; advsr leaves it untouched (pass another --store)"
    )


def _classify(db: sqlite3.Connection, name: str) -> _Kind:
    """What the database behind ``db`` is, reading only.

    Returns:
        ``"fresh"`` (an empty database), ``"unmarked"`` (advsr's tables at schema 2 without
        the application id: a store of an earlier advsr) or ``"marked"``.

    Raises:
        NotAStoreError: a database of another program.
        StoreError: a store of another schema version.
        StoreDamagedError: one of advsr's tables or columns is missing.
    """
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    if not (app_id or version or tables) and not db.execute("PRAGMA page_count").fetchone()[0]:
        return "fresh"
    ours = app_id == APPLICATION_ID or (
        app_id == 0 and "cells" in tables and {"cell_id", "experiment"} <= _columns(db, "cells")
    )
    if not ours:
        raise _foreign(name, tables, version, app_id)
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{name} was written with result-store schema {version or 1}; this advsr reads "
            f"schema {SCHEMA_VERSION} (use another --store file)"
        )
    for table, wanted in _COLUMNS.items():
        if table not in tables:
            raise _damaged(name, f"its {table} table is missing")
        lacking = [c for c in wanted if c not in _columns(db, table)]
        if lacking:
            raise _damaged(name, f"its {table} table lacks column(s) {', '.join(lacking)}")
    return "marked" if app_id else "unmarked"


def _loads(text: object, what: str, kind: type = object) -> Any:
    """A stored JSON value of the expected kind (``what`` names it in the error)."""
    try:
        value = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _Damage(f"{what} is not valid JSON") from None
    if not isinstance(value, kind):
        raise _Damage(f"{what} is not a JSON {'object' if kind is dict else 'array'}")
    return value


def _keys(text: object, what: str) -> list[str]:
    keys = _loads(text, what, list)
    if not all(isinstance(k, str) for k in keys):
        raise _Damage(f"{what} is not a list of item keys")
    return keys


def _metrics(text: object, what: str) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return [conv(x) for x in v]
        return from_json_number(v)

    return {k: conv(v) for k, v in _loads(text, what, dict).items()}


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
        read_only: open an existing store for reading only: nothing is written, not even
            the marker, and a read-only file, folder or mount is fine.

    Raises:
        NotAStoreError: a folder, a file that is not SQLite, a database of another program.
        StoreDamagedError: a store whose pages or tables are damaged.
        StoreReadOnlyError: a read-only store opened for writing.
        StoreError: no store to read, a store of another schema, or its folder is missing.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        if self.path == ":memory:":
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.executescript(_CREATE)
            return
        p = Path(self.path)
        self.check_path(p, write=not read_only)
        with _translated(self.path):
            self._db = self._connect(p)
            try:
                self._prepare(_classify(self._db, self.path))
            except BaseException:
                self._db.close()
                raise

    def _connect(self, p: Path) -> sqlite3.Connection:
        """A writing connection, or for reading one that never writes (:func:`_reader`)."""
        return _reader(p) if self.read_only else sqlite3.connect(p, timeout=30.0)

    def _prepare(self, kind: _Kind) -> None:
        """Create a fresh store, mark a store of an earlier advsr, switch to WAL (writing)."""
        if self.read_only:
            if kind == "fresh":
                raise NotAStoreError(f"{self.path} is an empty file, not an advsr result store")
            return
        if kind == "fresh":
            self._db.executescript(_CREATE)
        elif kind == "unmarked":
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.commit()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")

    @staticmethod
    def check_path(path: str | os.PathLike[str], *, write: bool = True) -> None:
        """Refuse a store path before any work, without creating or writing anything.

        Args:
            path: the store file.
            write: the store is to be written (else it must exist and is only read).

        Raises:
            NotAStoreError: a folder, a file that is not SQLite, a database of another
                program, or (reading) an empty file.
            StoreDamagedError: a store whose header, schema or tables are damaged.
            StoreReadOnlyError: (writing) a read-only file, folder or mount.
            StoreError: a store of another schema; a file whose folder does not exist;
                (reading) no file.
        """
        p = Path(path)
        _check_location(p)
        if not p.exists() and not write:
            raise StoreError(f"no result store at {p}")
        if not _is_blank(p):
            _check_magic(p)
            with _translated(str(p)):
                db = _reader(p)
                try:
                    _classify(db, str(p))
                finally:
                    db.close()
        reason = _read_only_reason(p) if write else None
        if reason is not None and not p.exists():
            raise StoreReadOnlyError(
                f"cannot create the result store {p}: {reason.removeprefix('its ')} "
                "(pass another --store)"
            )
        if reason is not None:
            raise _read_only(str(p), reason)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    @_guarded
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

    @_guarded
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

    @_guarded
    def put_artifact(self, cell_id: str, name: str, data: bytes, media_type: str) -> None:
        """Store (or replace) a named artefact of a cell: a PNG figure, a tensor file..."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO artifacts(cell_id, name, media_type, data, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (cell_id, name, media_type, sqlite3.Binary(data), time.time()),
            )

    @_guarded
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
    @_guarded
    def has_cell(self, cell_id: str) -> bool:
        """Whether a cell of this id was registered."""
        got = self._db.execute("SELECT 1 FROM cells WHERE cell_id = ?", (cell_id,))
        return got.fetchone() is not None

    @_guarded
    def is_finished(self, cell_id: str) -> bool:
        """Whether the cell exists and was marked finished."""
        got = self._db.execute("SELECT finished FROM cells WHERE cell_id = ?", (cell_id,))
        row = got.fetchone()
        return bool(row and row[0] is not None)

    @_guarded
    def expected_keys(self, cell_id: str) -> list[str]:
        """The keys of the rows a cell must have."""
        row = self._db.execute("SELECT expected FROM cells WHERE cell_id = ?", (cell_id,))
        got = row.fetchone()
        return _keys(got[0], f"cell {cell_id}: expected") if got else []

    @_guarded
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

    @_guarded
    def cell_rows(self, cell_id: str) -> list[dict[str, Any]]:
        """One cell's rows in item order: ``key``, ``image``, the metrics, ``seconds``."""
        cur = self._db.execute(
            "SELECT key, image, metrics, seconds FROM rows WHERE cell_id = ? ORDER BY idx",
            (cell_id,),
        )
        return [
            {
                "key": key,
                "image": image,
                **_metrics(m, f"cell {cell_id}, row {key!r}: metrics"),
                "seconds": sec,
            }
            for key, image, m, sec in cur
        ]

    @_guarded
    def artifacts(self, cell_id: str) -> dict[str, tuple[str, bytes]]:
        """A cell's artefacts: name -> (media type, bytes), in creation order."""
        cur = self._db.execute(
            "SELECT name, media_type, data FROM artifacts WHERE cell_id = ? ORDER BY created",
            (cell_id,),
        )
        return {name: (mt, bytes(data)) for name, mt, data in cur}

    @_guarded
    def artifact_names(self, cell_id: str) -> list[str]:
        """A cell's artefact names, in creation order (their bytes are not read)."""
        cur = self._db.execute(
            "SELECT name FROM artifacts WHERE cell_id = ? ORDER BY created", (cell_id,)
        )
        return [name for (name,) in cur]

    @_guarded
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
                    "identity": _loads(ident, f"cell {cid}: identity", dict),
                    "config": _loads(cfg, f"cell {cid}: config", dict),
                    "info": _loads(info, f"cell {cid}: info", dict),
                    "expected": len(_keys(expected, f"cell {cid}: expected")),
                    "stored": n,
                    "finished": fin is not None,
                }
            )
        return out

    @_guarded
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
            row.update(flatten(_loads(cfg, f"cell {cid}: config", dict)))
            row.update({"idx": idx, "key": key, "image": image})
            row.update(_metrics(metrics, f"cell {cid}, row {key!r}: metrics"))
            row["seconds"] = seconds
            if where and any(row.get(k) != v for k, v in where.items()):
                continue
            out.append(row)
        return out
