"""The registered experiment types, one module each (nothing else lives here).

Each module defines one experiment (its pydantic config, row generator and tables) and
registers it in :data:`advsr.engine.EXPERIMENTS`: ``eval-sr``, ``attack-sr``, ``transfer``,
``attack-clf``, ``defend``, ``perceptual``, ``explain``, ``manifold``, ``backdoor`` and the
training cells. The engine that plans, runs and stores cells is :mod:`advsr.engine`; the
registry imports this package the first time it is read.
"""

from advsr.registry import import_entries

ENTRY_MODULES = (
    "eval_sr",
    "attack_sr",
    "transfer_sr",
    "attack_clf",
    "defend",
    "perceptual_cmp",
    "explain",
    "manifold",
    "backdoor",
    "training",
)
"""The modules that register an experiment (one list: ``tests/test_structure.py`` checks it)."""

import_entries(__name__, ENTRY_MODULES)
