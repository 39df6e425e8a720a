"""Provenance of a result page: what produced it, from which code, data and weights.

:func:`provenance` collects it as JSON data (the ``provenance`` object of the leaderboard's
document); :func:`provenance_lines` turns it into the label -> text pairs a page shows
(:func:`advsr.report.provenance_html`).

Example:
    >>> p = provenance(command="advsr leaderboard --quick", config={"protocol": "v1"},
    ...                data={"spec": "samples", "sha256": "ab" * 32, "files": 8},
    ...                weights={"demo-edsr x4": "cd" * 32}, device="cpu")
    >>> sorted(provenance_lines(p))[:3]
    ['advsr', 'command', 'config hash']
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "config_hash",
    "git_commit",
    "of_cells",
    "provenance",
    "provenance_lines",
    "set_command",
]


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config`` (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the git checkout advsr runs from (``+ uncommitted changes`` when the
    tracked files differ from it); None outside a checkout or without git."""
    here = (start or Path(__file__)).resolve()
    root = next((p for p in here.parents if (p / ".git").exists()), None)
    if root is None:
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head} + uncommitted changes" if dirty else head


def _device_text(device: str) -> str:
    import torch

    from advsr.devices import resolve_device

    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    return f"{dev} ({name}; torch {torch.__version__}, {torch.get_num_threads()} threads)"


def provenance(
    *,
    command: str | None,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    weights: Mapping[str, str | None],
    device: str,
) -> dict[str, Any]:
    """The provenance of one run, as JSON data.

    Args:
        command: the command line (None when called from Python).
        config: every setting that changes the results (hashed into ``config_sha256``).
        data: the dataset: ``spec`` and its content hash (``sha256``, ``files``).
        weights: SHA-256 of each entry's weights, by label (None: no parameters).
        device: the device spec the cells ran on (``auto`` is resolved).
    """
    from advsr import __version__

    return {
        "advsr_version": __version__,
        "git_commit": git_commit(),
        "command": command,
        "config_sha256": config_hash(config),
        "data": dict(data),
        "weights": dict(weights),
        "device": _device_text(device),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def provenance_lines(p: Mapping[str, Any]) -> dict[str, str]:
    """Label -> text of a provenance object, in the order a page shows them."""
    data = p.get("data") or {}
    weights = p.get("weights") or {}
    label, spec = data.get("label"), data.get("spec")
    where = f"{label}: {spec}" if label and label != spec else str(spec)
    return {
        "advsr": str(p.get("advsr_version")),
        "git commit": p.get("git_commit") or "- (not a git checkout)",
        "command": p.get("command") or "- (Python API)",
        "config hash": f"sha256 {p.get('config_sha256')}",
        "dataset": f"{where} ({data.get('files')} files, sha256 {data.get('sha256')})",
        "weights": "\n".join(f"{k}: {v or '- (no parameters)'}" for k, v in weights.items()),
        "device": str(p.get("device")),
        "date": str(p.get("date")),
    }


_COMMAND: list[str | None] = [None]


def set_command(args: list[str] | None) -> None:
    """Remember the command line this process runs (the CLI calls it; None: Python)."""
    _COMMAND[0] = None if args is None else " ".join(["advsr", *args])


def of_cells(cells: Sequence[Any]) -> dict[str, Any]:
    """The provenance of a report built from stored cells (:class:`CellRun` objects): the
    command line of this process, a hash of the cells' identities, and the content hashes
    of the datasets and weight files those identities hold.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> cell = NS(cell_id="c1", config={"device": "cpu", "model": "bicubic"},
        ...           identity={"data": {"name": "samples", "sha256": "ab", "files": 8}})
        >>> p = of_cells([cell])
        >>> p["data"]["spec"], p["weights"]
        ('samples', {'bicubic': None})
    """
    datasets: dict[str, Mapping[str, Any]] = {}
    weights: dict[str, str | None] = {}
    for c in cells:
        ident = getattr(c, "identity", None) or {}
        data = ident.get("data")
        if isinstance(data, Mapping) and "sha256" in data:
            datasets[str(data.get("name"))] = data
        model = c.config.get("model")
        if isinstance(model, str):
            w = ident.get("weights")
            weights[model] = str(w) if isinstance(w, str) else weights.get(model)
    device = str(cells[0].config.get("device", "auto")) if cells else "auto"
    return provenance(
        command=_COMMAND[0],
        config={"cells": sorted(str(c.cell_id) for c in cells)},
        data={
            "spec": ", ".join(datasets) or "-",
            "sha256": ", ".join(str(d["sha256"]) for d in datasets.values()) or "-",
            "files": sum(int(d.get("files") or 0) for d in datasets.values()),
        },
        weights=weights,
        device=device,
    )
