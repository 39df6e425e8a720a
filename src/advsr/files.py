"""Settings that name files: their identity by content, their label, their provenance.

One rule for every input a result depends on, at any depth: a setting *declared* as a file
(:data:`~advsr.settings.WEIGHTS`, :data:`~advsr.settings.FILE`) or a dataset
(:data:`~advsr.settings.DATA`) on its settings model, on a defense factory's parameters or on
a trigger's fields (:func:`~advsr.settings.file_roles`) is, when it names an existing file or
folder,

* replaced by its content hash in the identity (``sha256:<hex>``; a dataset: ``data:<hex>``
  of its files' names and bytes), so moving, renaming or copying it changes nothing;
* shown in tables by a short, stable label (``IMDN_x2.pth #740b39``): no paths, so tables are
  the same on every machine;
* listed in provenance with its full path, size and SHA-256 (:func:`file_entry`).

A declared setting whose value is not a file (``mask=center:0.5``, ``bank_data=samples``) is
kept as written. Hashes are cached per file, size and modification time, so a grid of forty
cells over one weight file reads it once.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "bank.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_label(p)
    'bank.bin #ba7816'
    >>> spec_identity(f"quilting:bank={p},k=3", {"bank": "file"})
    'quilting:bank=sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad,k=3'
    >>> spec_label(f"quilting:bank={p},k=3", {"bank": "file"})
    'quilting:bank=bank.bin #ba7816,k=3'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advsr.digest import file_sha256

__all__ = [
    "DATA_ROLES",
    "FILE_ROLES",
    "data_digest",
    "file_entry",
    "file_label",
    "file_sha256",
    "identity_label",
    "is_path",
    "spec_files",
    "spec_identity",
    "spec_label",
    "value_identity",
    "value_label",
]

FILE_ROLES = frozenset({"weights", "file", "model"})
"""Roles whose value, when it names an existing file, is identified by its bytes."""
DATA_ROLES = frozenset({"data"})
"""Roles whose value, when it names an existing file or folder, is a dataset."""


def is_path(value: Any) -> bool:
    """Whether ``value`` is text (or a path) naming an existing file or folder."""
    if not isinstance(value, str | os.PathLike) or not str(value):
        return False
    try:
        return Path(value).exists()
    except (OSError, ValueError):
        return False


def data_digest(spec: str) -> dict[str, Any]:
    """A dataset by content: its kind, file count and the hash of every file's name and
    bytes (a registered name also keeps its name)."""
    from advsr.data.inventory import data_files

    kind, files = data_files(spec)
    h = hashlib.sha256()
    for name, path in files:
        h.update(f"{name}\0{file_sha256(path)}\n".encode())
    out: dict[str, Any] = {"kind": kind, "files": len(files), "sha256": h.hexdigest()}
    if kind not in ("file", "folder"):
        out["name"] = spec
    return out


def file_label(path: str | os.PathLike[str]) -> str:
    """``name #abcdef``: the file's name and the first 6 hex digits of its SHA-256."""
    return f"{Path(path).name} #{file_sha256(path)[:6]}"


def _names(role: str | None, value: Any) -> str | None:
    """What a declared setting's value names: ``"file"`` (an existing file under a file
    role), ``"data"`` (an existing file or folder under a dataset role) or None (a value
    kept as written)."""
    if role in FILE_ROLES and isinstance(value, str | os.PathLike) and Path(value).is_file():
        return "file"
    if role in DATA_ROLES and is_path(value):
        return "data"
    return None


def value_identity(role: str | None, value: Any) -> Any:
    """A declared setting's value as it enters an identity (see the module docstring)."""
    kind = _names(role, value)
    if kind == "file":
        return f"sha256:{file_sha256(value)}"
    if kind == "data":
        return f"data:{data_digest(str(value))['sha256']}"
    return value


def value_label(role: str | None, value: Any) -> Any:
    """A declared setting's value as tables show it (a short label instead of a path)."""
    kind = _names(role, value)
    if kind == "file":
        return file_label(value)
    if kind == "data":
        p = Path(value)
        return f"{p.name or p.resolve().name} #{data_digest(str(value))['sha256'][:6]}"
    return value


def file_entry(setting: str, role: str | None, value: Any) -> dict[str, Any] | None:
    """The provenance entry of one declared setting: its path, size and SHA-256 (a
    dataset: its file count and content hash); None when the value names no file."""
    kind = _names(role, value)
    if kind is None:
        return None
    p = Path(value)
    entry: dict[str, Any] = {"setting": setting, "path": str(p.resolve())}
    if kind == "file":
        return {**entry, "bytes": p.stat().st_size, "sha256": file_sha256(p)}
    d = data_digest(str(value))
    return {**entry, "files": d["files"], "sha256": d["sha256"]}


def _spec_parts(spec: str) -> tuple[str, dict[str, Any]]:
    from advsr.spec_grammar import parse_spec

    return parse_spec(spec)


def _join(name: str, settings: Mapping[str, Any]) -> str:
    from advsr.spec_grammar import format_value

    if not settings:
        return name
    return name + ":" + ",".join(f"{k}={format_value(settings[k])}" for k in sorted(settings))


def spec_identity(spec: str, roles: Mapping[str, str]) -> str:
    """The canonical spec (settings sorted, values normalised) with every declared file
    or dataset replaced by its content hash; a spec naming no file is its canonical form."""
    name, settings = _spec_parts(spec)
    return _join(name, {k: value_identity(roles.get(k), v) for k, v in settings.items()})


def spec_label(spec: str, roles: Mapping[str, str]) -> str:
    """The canonical spec with every declared file or dataset shown by its short label."""
    name, settings = _spec_parts(spec)
    return _join(name, {k: value_label(roles.get(k), v) for k, v in settings.items()})


def spec_files(spec: str, roles: Mapping[str, str], where: str = "") -> list[dict[str, Any]]:
    """The provenance entries of the files and datasets a spec names (``where`` prefixes
    the setting names, e.g. ``defense.weights``)."""
    _, settings = _spec_parts(spec)
    out = []
    for k, v in sorted(settings.items()):
        entry = file_entry(f"{where}{k}", roles.get(k), v)
        if entry is not None:
            out.append(entry)
    return out


def identity_label(value: Any, identity: Any) -> Any:
    """How a table shows a file setting of a stored cell, from the cell's own identity (the
    file need not exist any more): the file or folder name and the first 6 hex digits of
    the content hash the identity holds; registered names and lists element by element.

    Example:
        >>> identity_label("/w/IMDN_x2.pth", "740b39" + "0" * 58)
        'IMDN_x2.pth #740b39'
        >>> identity_label("samples", {"kind": "samples", "sha256": "ab" * 32})
        'samples'
    """
    if isinstance(value, list | tuple) and isinstance(identity, list | tuple):
        return [identity_label(v, i) for v, i in zip(value, identity, strict=False)]
    if isinstance(value, dict) and isinstance(identity, dict) and set(value) == set(identity):
        return {k: identity_label(v, identity[k]) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    digest = None
    if isinstance(identity, str) and len(identity) == 64:
        digest = identity
    elif isinstance(identity, dict) and (
        identity.get("kind") in ("file", "folder") or "file" in identity
    ):
        digest = identity.get("sha256") or identity.get("file")
    if not isinstance(digest, str):
        return value
    p = Path(value)
    return f"{p.name or value} #{digest[:6]}"
