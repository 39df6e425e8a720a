"""What a cell's result was computed from, recorded beside it for provenance.

:func:`inputs_of` lists, for one planned cell, every model it runs (role, zoo name or file,
the weight file with its full path and SHA-256 — given, bundled with advsr, or from an
installed package — and the parameter count), the defense it measures through (its spec
label, parameters and the files it names), and every other file its settings name (a
perturbation, a mask, a model file, a trigger image, a target). The driver stores it as the
cell's ``info["inputs"]``; :func:`advsr.provenance.of_cells` gathers it into the provenance
block of reports, ``--json`` documents, the leaderboard and ``reproduce``.

The models are the ones the plan already built (the run's :class:`Context` caches them), so
listing them loads nothing twice.
"""

from __future__ import annotations

from typing import Any

from advsr.engine.context import Context
from advsr.files import file_entry, is_path
from advsr.settings import Settings, field_role

__all__ = ["inputs_of"]


def _models(cfg: Settings, ctx: Context) -> list[dict[str, Any]]:
    from advsr.engine.attack_cells import ClassifierDataConfig
    from advsr.provenance import model_entry

    device = ctx.device(str(getattr(cfg, "device", "auto")))
    seed = getattr(cfg, "init_seed", None)
    if isinstance(cfg, ClassifierDataConfig):
        module = ctx.classifier(cfg.model, cfg.weights, device, seed)
        return [model_entry("classifier", cfg.model, cfg.weights, module, init_seed=seed)]
    scale = getattr(cfg, "scale", None)
    if scale is None:
        return []
    if hasattr(cfg, "source") and hasattr(cfg, "targets"):  # transfer: source and targets
        weights: dict[str, str] = dict(getattr(cfg, "weights", {}) or {})
        names = list(dict.fromkeys([cfg.source, *cfg.targets]))
        out = []
        for n in names:
            module = ctx.sr_model(n, scale, weights.get(n), device, seed)
            out.append(model_entry("sr", n, weights.get(n), module, scale=scale, init_seed=seed))
        return out
    name = getattr(cfg, "model", None)
    if not isinstance(name, str) or field_role(type(cfg), "model") != "model":
        return []  # a training run names the architecture it trains, not a model it runs
    w = getattr(cfg, "weights", None)
    module = ctx.sr_model(name, scale, w, device, seed)
    return [model_entry("sr", name, w, module, scale=scale, init_seed=seed)]


def _defense(cfg: Settings, ctx: Context) -> list[dict[str, Any]]:
    from advsr.defenses.registry import DEFENSES, parse_spec
    from advsr.provenance import defense_entry

    spec = getattr(cfg, "defense", None)
    if not isinstance(spec, str) or spec == "none" or parse_spec(spec)[0] not in DEFENSES:
        return []
    device = ctx.device(str(getattr(cfg, "device", "auto")))
    return [defense_entry(spec, ctx.defense(spec, device))]


def _files(cfg: Settings) -> list[dict[str, Any]]:
    """Files named by the config's own settings (not the models' weights, listed with the
    models): declared files, and attack settings whose value names a file (a mask)."""
    out = []
    for name, value in cfg.model_dump().items():
        role = field_role(type(cfg), name)
        if name in ("weights", "data") or role in ("neutral", "data"):
            continue
        if role in ("weights", "file") or (role == "attack" and is_path(value)):
            entry = file_entry(name, "file", value)
            if entry is not None:
                out.append(entry)
    trigger = getattr(cfg, "trigger", None)
    if isinstance(trigger, str):
        from advsr.backdoor.triggers import trigger_files

        out += trigger_files(trigger)
    return out


def inputs_of(cfg: Settings, ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """The models (with weights, SHA-256, parameters) and files a planned cell uses."""
    return {"models": _models(cfg, ctx) + _defense(cfg, ctx), "files": _files(cfg)}
