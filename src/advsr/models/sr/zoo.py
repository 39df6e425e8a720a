"""The SR zoo's registry: what a zoo entry is, and the one way an architecture registers one.

Each architecture module (``edsr.py``, ``carn.py``...) registers its own entries beside the
class that defines them; :mod:`advsr.models.sr` imports those modules from its one tuple
``ENTRY_MODULES``. This module imports no architecture, so they can all import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advsr.models.loading import StateDict
from advsr.registry import Registry

__all__ = ["SR_MODELS", "SRModelEntry", "register_sr_model"]


@dataclass(frozen=True)
class SRModelEntry:
    """A zoo entry.

    Attributes:
        arch: class ``(scale, **options) -> nn.Module``.
        scales: the scale factors this entry supports.
        description: one line for ``advsr models``.
        options: architecture options of this entry (e.g. EDSR's width and depth).
        needs_weights: whether the model is meaningless without a weight file.
        adapt: renames keys of other official layouts to the module's (RRDB old style).
        bundled: scale -> weight file under :func:`advsr.models.sr.weights_dir` used when
            none is given.
        reference: where the key layout comes from.
        tiny: architecture options of a tiny instance, for contract tests and smoke runs.
    """

    arch: Callable[..., nn.Module]
    scales: tuple[int, ...]
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    needs_weights: bool = True
    adapt: Callable[[StateDict], StateDict] | None = None
    bundled: Mapping[int, str] = field(default_factory=dict)
    reference: str = ""
    tiny: Mapping[str, Any] = field(default_factory=dict)


SR_MODELS: Registry[SRModelEntry] = Registry("SR model", package="advsr.models.sr")
"""Every zoo SR model (reading it imports :mod:`advsr.models.sr`, which registers them)."""


def register_sr_model(name: str, entry: SRModelEntry) -> SRModelEntry:
    """Add ``entry`` to :data:`SR_MODELS` under ``name`` (its description as the help line)."""
    return SR_MODELS.register(name, entry, entry.description)
