"""Defenses: the Defense contract and SR-side defenses (classifier defenses follow)."""

from advsr.defenses.base import Defense
from advsr.defenses.sr_side import SR_DEFENSES, ResizeByOne, SelfEnsemble, apply_sr_defense

__all__ = ["SR_DEFENSES", "Defense", "ResizeByOne", "SelfEnsemble", "apply_sr_defense"]
