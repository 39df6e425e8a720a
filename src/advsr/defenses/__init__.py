"""Input-transformation defenses (the :class:`Defense` contract), their registry, and the
adaptive-attack wrappers BPDA and EOT.

Every defense registers itself in :data:`DEFENSES` in its own module, beside its class, with
a settings model and the domains it serves (``classifier``, ``sr`` or both); it is built from
a spec string with :func:`create_defense` (``advsr list defenses`` lists them with their
settings), and an SR-side defense is put in front of an SR model with
:func:`apply_sr_defense`.

Example:
    >>> defense_names("sr")
    ['resize-by-one', 'self-ensemble']
"""

from __future__ import annotations

from advsr.defenses.adaptive import (
    BPDA,
    EOT,
    DefendedClassifier,
    adaptive,
    bpda,
    defend,
    eot,
)
from advsr.defenses.base import Defense
from advsr.defenses.registry import (
    DEFENSES,
    apply_sr_defense,
    canonical_spec,
    create_defense,
    defense_names,
    get_defense,
    parse_spec,
    register_defense,
)
from advsr.defenses.resizing import Interpolation, RandomResizePad, SRPurification
from advsr.defenses.sr_side import ResizeByOne, SelfEnsemble
from advsr.registry import import_entries

__all__ = [
    "BPDA",
    "DEFENSES",
    "ENTRY_MODULES",
    "EOT",
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
    "defense_names",
    "eot",
    "get_defense",
    "parse_spec",
    "register_defense",
]

ENTRY_MODULES = (
    "deflection",
    "filters",
    "jpeg",
    "quantize",
    "quilting",
    "resizing",
    "sr_side",
    "tvm",
    "wavelet",
)
"""The modules that register a defense (one list: ``tests/test_structure.py`` checks it)."""

import_entries(__name__, ENTRY_MODULES)
