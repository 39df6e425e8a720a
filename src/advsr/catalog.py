"""Every registry of advsr, listable with its entries' settings (``advsr list WHAT``).

Example:
    >>> [r["name"] for r in catalog("experiments")][:3]
    ['attack-clf', 'attack-sr', 'backdoor']
    >>> "fpgap" in [r["name"] for r in catalog("attacks")]
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from advsr.registry import Registry

__all__ = ["CATALOGS", "catalog"]


def _attacks() -> list[dict[str, Any]]:
    from advsr.attacks import list_attacks

    return list_attacks()


def _defenses() -> list[dict[str, Any]]:
    from advsr.defenses import DEFENSES

    out = []
    for name in DEFENSES.names():
        entry = DEFENSES.get(name)
        out.append(
            {
                "name": name,
                "domain": list(entry.domains),
                "settings": entry.defaults(),
                "differentiable": entry.differentiable,
                "stochastic": entry.stochastic,
                "adaptive": entry.adaptive,
                "description": entry.description,
            }
        )
    return out


def _models() -> list[dict[str, Any]]:
    from advsr.models.refsr import REFSR_MODELS
    from advsr.models.sr import list_sr_models

    rows = [{"kind": "sr", **r} for r in list_sr_models()]
    for name in REFSR_MODELS.names():
        e = REFSR_MODELS.get(name)
        rows.append(
            {
                "kind": "refsr",
                "name": name,
                "scales": list(e.scales),
                "description": e.description,
                "settings": dict(e.options),
            }
        )
    return rows


def _classifiers() -> list[dict[str, Any]]:
    from advsr.models.classifiers import CLASSIFIERS

    return [
        {
            "name": n,
            "classes": len(CLASSIFIERS.get(n).classes),
            "input_size": CLASSIFIERS.get(n).input_size,
            "bundled": CLASSIFIERS.get(n).bundled is not None,
            "description": CLASSIFIERS.get(n).description,
        }
        for n in CLASSIFIERS.names()
    ]


def _triggers() -> list[dict[str, Any]]:
    from advsr.backdoor.triggers import TRIGGERS

    out = []
    for name in TRIGGERS.names():
        cls = TRIGGERS.get(name)
        settings = {
            f.name: f.default if f.default is not dataclasses.MISSING else None
            for f in dataclasses.fields(cls)
            if f.init
        }
        out.append({"name": name, "settings": settings, "description": TRIGGERS.help(name)})
    return out


def _experiments() -> list[dict[str, Any]]:
    from advsr.engine.cell import EXPERIMENTS

    out = []
    for name in EXPERIMENTS.names():
        e = EXPERIMENTS.get(name)
        settings = {
            k: "(required)" if f.is_required() else f.get_default(call_default_factory=True)
            for k, f in e.config.model_fields.items()
        }
        out.append({"name": name, "settings": settings, "description": e.description})
    return out


def _datasets() -> list[dict[str, Any]]:
    """The SR datasets (the benchmark sets last, with where they were found and in which
    layout), then the labelled ones."""
    from advsr.data import DATASETS
    from advsr.data.benchmarks import BENCHMARK_SETS

    sets = [b.name.lower() for b in BENCHMARK_SETS]
    names = [n for n in DATASETS.names() if n not in sets] + [n for n in sets if n in DATASETS]
    rows = []
    for n in names:
        entry = DATASETS.get(n)
        rows.append(
            {
                "name": entry.title or n,
                "kind": "sr",
                "images": entry.size,
                "description": entry.description,
                **(entry.where() if entry.where is not None else {}),
            }
        )
    for n, size in (("digits", 1797), ("digits-train", 1437), ("digits-test", 360)):
        rows.append(
            {
                "name": n,
                "kind": "labelled",
                "images": size,
                "description": "scikit-learn's 8x8 digits as 32x32 RGB (80/20 split, seed 0)",
            }
        )
    return rows


CATALOGS: Registry[Callable[[], list[dict[str, Any]]]] = Registry("listing")
"""What ``advsr list`` can list."""
for _name, _fn in (
    ("attacks", _attacks),
    ("classifiers", _classifiers),
    ("datasets", _datasets),
    ("defenses", _defenses),
    ("experiments", _experiments),
    ("models", _models),
    ("triggers", _triggers),
):
    CATALOGS.register(_name, _fn)


def catalog(what: str) -> list[dict[str, Any]]:
    """The entries of one registry (see :data:`CATALOGS`), each a JSON-ready dict.

    Raises:
        UnknownNameError: not a listable registry (with the closest name).
    """
    return CATALOGS.get(what)()
