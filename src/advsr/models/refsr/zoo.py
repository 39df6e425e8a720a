"""The RefSR zoo's registry: what an entry is, and the one way a module registers one.

Each architecture module (``ttsr.py``, ``simple.py``) registers its own entry beside the
class that defines it; :mod:`advsr.models.refsr` imports those modules from its one tuple
``ENTRY_MODULES``. This module imports no architecture, so they can all import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advsr.registry import Registry

__all__ = ["REFSR_MODELS", "RefSRModelEntry", "register_refsr_model"]


@dataclass(frozen=True)
class RefSRModelEntry:
    """A RefSR zoo entry.

    Attributes:
        arch: class ``(scale, **options) -> nn.Module``.
        scales: supported scale factors.
        description: one line.
        options: default architecture options.
        tiny: options of a tiny instance (tests, CPU smoke runs).
        reference: the paper / code whose structure is followed.
    """

    arch: Callable[..., nn.Module]
    scales: tuple[int, ...]
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""


REFSR_MODELS: Registry[RefSRModelEntry] = Registry("RefSR model", package="advsr.models.refsr")
"""Every RefSR model (reading it imports :mod:`advsr.models.refsr`, which registers them)."""


def register_refsr_model(name: str, entry: RefSRModelEntry, help: str) -> RefSRModelEntry:
    """Add ``entry`` to :data:`REFSR_MODELS` under ``name``, with a short ``help`` line."""
    return REFSR_MODELS.register(name, entry, help)
