"""The classifier zoo's registry: what an entry is, and the one way a module registers one.

Each architecture module (``cifar_resnet.py``, ``small_cnn.py``, ``imagenet.py``) registers
its own entries beside the network that defines them; :mod:`advsr.models.classifiers`
imports those modules from its one tuple ``ENTRY_MODULES``. This module imports no
architecture, so they can all import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from advsr.registry import Registry

__all__ = ["CLASSIFIERS", "ClassifierEntry", "register_classifier"]


@dataclass(frozen=True)
class ClassifierEntry:
    """A classifier zoo entry: the bare network factory and its input normalisation."""

    net: Callable[[], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...]
    description: str
    input_size: int
    bundled: str | None = None
    installed: Callable[[], Path] | None = None
    """Where an installed package keeps trained weights (used when none are given)."""
    load_size: int | None = None
    """User images are resized and centre-cropped to this side when loaded (ImageNet)."""


CLASSIFIERS: Registry[ClassifierEntry] = Registry("classifier", package="advsr.models.classifiers")
"""Every zoo classifier (reading it imports :mod:`advsr.models.classifiers`, which registers
them)."""


def register_classifier(name: str, entry: ClassifierEntry) -> ClassifierEntry:
    """Add ``entry`` to :data:`CLASSIFIERS` under ``name``."""
    return CLASSIFIERS.register(name, entry)
