"""Backdoor attacks on reference-based SR: triggers added to the reference image (BadRefSR)."""

from advsr.backdoor.poison import PoisonedTriplets, RefSRTriplets, Triplet, poison_indices
from advsr.backdoor.triggers import (
    TRIGGERS,
    BadNets,
    Blend,
    Color,
    Filter1977,
    Refool,
    Trigger,
    WaNet,
    create_trigger,
    stealthiness,
)

__all__ = [
    "TRIGGERS",
    "BadNets",
    "Blend",
    "Color",
    "Filter1977",
    "PoisonedTriplets",
    "RefSRTriplets",
    "Refool",
    "Trigger",
    "Triplet",
    "WaNet",
    "create_trigger",
    "poison_indices",
    "stealthiness",
]
