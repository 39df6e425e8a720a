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
    "defense_entry",
    "git_commit",
    "model_entry",
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


def _weights_source(
    role: str, name: str, weights: Any, scale: int | None, init_seed: int | None
) -> tuple[str | None, str]:
    """The file a model's weights came from and how it was chosen."""
    if weights is not None:
        return str(weights), "given"
    if init_seed is not None:
        return None, f"random weights (untrained, initialised from seed {init_seed})"
    if Path(name).is_file():
        return name, "model file"
    if role == "classifier":
        from advsr.models.classifiers import CLASSIFIERS, default_weights

        path, source = default_weights(name) if name in CLASSIFIERS else (None, "no weights")
    else:
        from advsr.models.sr import SR_MODELS
        from advsr.models.sr import default_weights as sr_default

        path, source = None, "no weights"
        if name in SR_MODELS and scale is not None:
            path, source = sr_default(name, scale)
    return (str(path) if path is not None else None), source


def model_entry(
    role: str,
    name: str,
    weights: Any,
    module: Any,
    *,
    scale: int | None = None,
    init_seed: int | None = None,
) -> dict[str, Any]:
    """One model among a result's inputs: its role (``classifier``, ``sr``), zoo name or
    file, the weight file (given, bundled, installed, or none) with its full path, SHA-256
    and parameter count.

    Example:
        >>> from advsr.models.sr import create_sr_model
        >>> e = model_entry("sr", "bicubic", None, create_sr_model("bicubic", 2), scale=2)
        >>> e["parameters"], e["source"]
        (0, 'no parameters')
    """
    from advsr.files import file_sha256

    path, source = _weights_source(role, name, weights, scale, init_seed)
    params = sum(int(p.numel()) for p in module.parameters())
    if path is None and params == 0:
        source = "no parameters"
    return {
        "role": role,
        "model": Path(name).name if Path(name).is_file() else name,
        "scale": scale,
        "source": source,
        "file": str(Path(path).resolve()) if path else None,
        "sha256": file_sha256(path) if path else None,
        "parameters": params,
    }


def defense_entry(spec: str, defense: Any) -> dict[str, Any]:
    """A defense among a result's inputs: its spec as tables show it, its parameter count
    (an SR purifier's network) and every file it names (path, size, SHA-256)."""
    from advsr.defenses.registry import defense_files, defense_label

    params = sum(int(p.numel()) for p in defense.parameters()) if defense is not None else 0
    return {
        "role": "defense",
        "model": defense_label(spec),
        "parameters": params,
        "files": defense_files(spec),
    }


def _entry_text(e: Mapping[str, Any]) -> str:
    head = f"{e.get('role')} {e.get('model')}"
    if e.get("scale"):
        head += f" x{e['scale']}"
    parts = [str(e.get("source"))] if e.get("source") else []
    if e.get("file"):
        parts.append(f"{e['file']} sha256 {e.get('sha256')}")
    parts += [f"{f['path']} sha256 {f['sha256']}" for f in e.get("files") or []]
    parts.append(f"{int(e.get('parameters') or 0):,} parameters")
    return f"{head}: " + "; ".join(parts)


def provenance_lines(p: Mapping[str, Any]) -> dict[str, str]:
    """Label -> text of a provenance object, in the order a page shows them."""
    data = p.get("data") or {}
    weights = p.get("weights") or {}
    label, spec = data.get("label"), data.get("spec")
    where = f"{label}: {spec}" if label and label != spec else str(spec)
    if data.get("folders"):
        where += f" ({', '.join(data['folders'])})"
    models = p.get("models") or []
    out = {
        "advsr": str(p.get("advsr_version")),
        "git commit": p.get("git_commit") or "- (not a git checkout)",
        "command": p.get("command") or "- (Python API)",
        "config hash": f"sha256 {p.get('config_sha256')}",
        "dataset": f"{where} ({data.get('files')} files, sha256 {data.get('sha256')})",
        "weights": "\n".join(_entry_text(e) for e in models)
        or "\n".join(f"{k}: {v or '- (no parameters)'}" for k, v in weights.items()),
    }
    files = p.get("files") or []
    if files:
        out["files"] = "\n".join(f"{f['setting']}: {f['path']} sha256 {f['sha256']}" for f in files)
    if p.get("settings"):
        out["settings"] = "\n".join(f"{k}: {v}" for k, v in p["settings"].items())
    out["device"] = str(p.get("device"))
    out["date"] = str(p.get("date"))
    return out


_COMMAND: list[str | None] = [None]


def set_command(args: list[str] | None) -> None:
    """Remember the command line this process runs (the CLI calls it; None: Python)."""
    _COMMAND[0] = None if args is None else " ".join(["advsr", *args])


def _settings_of(cells: Sequence[Any]) -> dict[str, str]:
    """The settings that decide the cells' results (neutral ones left out): one value, or
    every distinct value joined by `` | ``."""
    from advsr.engine.cell import EXPERIMENTS
    from advsr.settings import field_role

    seen: dict[str, list[str]] = {}
    for c in cells:
        name = getattr(c, "experiment", None)
        cls = (
            EXPERIMENTS.get(name).config if isinstance(name, str) and name in EXPERIMENTS else None
        )
        shown = dict(getattr(c, "shown", None) or c.config)
        info = getattr(c, "info", None) or {}
        if isinstance(info.get("defense"), str) and "defense" in shown:
            shown["defense"] = info["defense"]  # the spec's label: files by content, no paths
        for k, v in shown.items():
            if v is None or (cls is not None and field_role(cls, k) == "neutral"):
                continue
            if k == "eps" and isinstance(v, float):  # budgets as people write them
                from advsr.attacks.budget import format_budget

                v = format_budget(v)
            text = json.dumps(v, default=str) if not isinstance(v, str) else v
            if text not in seen.setdefault(k, []):
                seen[k].append(text)
    return {k: " | ".join(v) for k, v in seen.items()}


def _unique(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        out.setdefault(json.dumps(e, sort_keys=True, default=str), dict(e))
    return list(out.values())


def of_cells(cells: Sequence[Any]) -> dict[str, Any]:
    """The provenance of a report built from stored cells (:class:`CellRun` objects): the
    command line of this process, a hash of the cells' identities, the datasets (content
    hash, file count, folder), every model with its weight file, SHA-256 and parameter count
    and every file named inside the settings (recorded when each cell was planned, under
    ``info["inputs"]``), and the settings that decide the results.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> cell = NS(cell_id="c1", config={"device": "cpu", "model": "bicubic"},
        ...           identity={"data": {"name": "samples", "sha256": "ab", "files": 8}})
        >>> p = of_cells([cell])
        >>> p["data"]["spec"], p["weights"]
        ('samples', {'bicubic': None})
    """
    from advsr.files import identity_label

    datasets: dict[str, Mapping[str, Any]] = {}
    folders: list[str] = []
    weights: dict[str, str | None] = {}
    models: list[Mapping[str, Any]] = []
    files: list[Mapping[str, Any]] = []
    for c in cells:
        ident = getattr(c, "identity", None) or {}
        data = ident.get("data")
        if isinstance(data, Mapping) and "sha256" in data:
            given = c.config.get("data")
            name = data.get("name") or identity_label(str(given), data)
            datasets[str(name)] = data
            if data.get("kind") in ("file", "folder") and isinstance(given, str):
                folder = str(Path(given).resolve())
                folders += [folder] if folder not in folders else []
        model = c.config.get("model")
        if isinstance(model, str):
            w = ident.get("weights")
            weights[model] = str(w) if isinstance(w, str) else weights.get(model)
        inputs = (getattr(c, "info", None) or {}).get("inputs") or {}
        models += inputs.get("models", [])
        files += inputs.get("files", [])
    device = str(cells[0].config.get("device", "auto")) if cells else "auto"
    out = provenance(
        command=_COMMAND[0],
        config={"cells": sorted(str(c.cell_id) for c in cells)},
        data={
            "spec": ", ".join(datasets) or "-",
            "sha256": ", ".join(str(d["sha256"]) for d in datasets.values()) or "-",
            "files": sum(int(d.get("files") or 0) for d in datasets.values()),
            **({"folders": folders} if folders else {}),
        },
        weights=weights,
        device=device,
    )
    out["models"] = _unique(models)
    out["files"] = _unique(files)
    out["settings"] = _settings_of(cells)
    return out
