"""Content hashes of files, cached per path, size and modification time.

The one hashing primitive under every identity by content (:mod:`advsr.files`) and every
weight file's hash (:func:`advsr.io.file_sha256`): a grid of forty cells over one weight
file reads it once.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:12]
    'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from advsr.errors import ModelLoadError

__all__ = ["file_sha256"]

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, computed once per (path, size, mtime) in this process.

    Raises:
        ModelLoadError: no such file, or not a regular file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ModelLoadError(f"no such file: {p}") from None
    if not p.is_file():
        raise ModelLoadError(f"not a regular file: {p}")
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]
