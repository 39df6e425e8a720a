"""Input-transformation defenses (the :class:`Defense` contract), their registry, and the
adaptive-attack wrappers BPDA and EOT.

Every defense is registered in :data:`DEFENSES` and built from a spec string with
:func:`create_defense` (``advsr defenses`` lists them with their settings).
"""

from __future__ import annotations

from advsr.defenses import _catalog  # noqa: F401  (registers the defenses)
from advsr.defenses.adaptive import BPDA, EOT, DefendedClassifier, adaptive, bpda, defend, eot
from advsr.defenses.base import Defense
from advsr.defenses.registry import DEFENSES, canonical_spec, create_defense, parse_spec
from advsr.defenses.resizing import Interpolation, RandomResizePad, SRPurification
from advsr.defenses.sr_side import SR_DEFENSES, ResizeByOne, SelfEnsemble, apply_sr_defense

__all__ = [
    "BPDA",
    "DEFENSES",
    "EOT",
    "SR_DEFENSES",
    "DefendedClassifier",
    "Defense",
    "Interpolation",
    "RandomResizePad",
    "ResizeByOne",
    "SRPurification",
    "SelfEnsemble",
    "adaptive",
    "apply_sr_defense",
    "bpda",
    "canonical_spec",
    "create_defense",
    "defend",
    "eot",
    "parse_spec",
]
