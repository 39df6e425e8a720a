"""Attacks on SR models and classifiers: one registry, one call shape, one result type.

Importing this package registers every attack in :data:`ATTACKS` (see
:mod:`advsr.attacks.base` for the contract): the gradient attacks of
:mod:`~advsr.attacks.classifier`, the minimal ones of :mod:`~advsr.attacks.minimal`, the
perceptual ones of :mod:`~advsr.attacks.perceptual` and the SR attacks of
:mod:`~advsr.attacks.sr` and :mod:`~advsr.attacks.universal`.

Example:
    >>> sorted(n for n in ATTACKS.names() if ATTACKS.get(n).domain == "sr")
    ['basic', 'partial', 'universal']
"""

from advsr.attacks._loop import StepResult, project, random_start, run_steps
from advsr.attacks.base import (
    ATTACKS,
    Attack,
    AttackEntry,
    AttackResult,
    create_attack,
    format_budget,
    list_attacks,
    parse_attack,
    parse_budget,
)
from advsr.attacks.objectives import REFERENCES, sr_deviation, sr_reference, sr_to_target
from advsr.attacks.sr import basic_attack, masked_psnr, partial_attack, sr_attack_metrics
from advsr.attacks.universal import universal_attack
from advsr.modes import eval_mode
from advsr.registry import import_entries

ENTRY_MODULES = (
    "classifier",
    "minimal",
    "perceptual",
    "apgd",
    "square",
    "ensemble",
    "sr",
    "universal",
)
"""The modules that register attacks (one list: ``tests/test_structure.py`` checks it)."""

import_entries(__name__, ENTRY_MODULES)

__all__ = [
    "ATTACKS",
    "REFERENCES",
    "Attack",
    "AttackEntry",
    "AttackResult",
    "StepResult",
    "basic_attack",
    "create_attack",
    "eval_mode",
    "format_budget",
    "list_attacks",
    "masked_psnr",
    "parse_attack",
    "parse_budget",
    "partial_attack",
    "project",
    "random_start",
    "run_steps",
    "sr_attack_metrics",
    "sr_deviation",
    "sr_reference",
    "sr_to_target",
    "universal_attack",
]
