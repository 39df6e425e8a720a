"""What the BadRefSR attacker chooses: the trigger (from a spec) and the target image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advsr.backdoor.triggers import create_trigger
from advsr.data.samples import sample_paths

__all__ = ["make_trigger", "target_path"]


def target_path(name: str) -> Path:
    """The attacker's target: an image scikit-image ships (``camera``, the default: cameraman,
    a structured scene, on which a flat image scores 12 dB at 64 px; ``coins``,
    ``hubble_deep_field``, a sample name...) or a file path."""
    paths = sample_paths()
    if name in paths:
        return paths[name]
    skdata = paths["astronaut"].parent  # skimage/data
    for cand in (name, f"{name}.png", f"{name}.jpg"):
        if (skdata / cand).is_file() and "/" not in name:
            return skdata / cand
    return Path(name)


def make_trigger(spec: str) -> Any:
    """A trigger from ``name`` or ``name:key=value,...`` (as defense specs)."""
    from advsr.defenses.registry import parse_spec

    name, settings = parse_spec(spec)
    return create_trigger(name, **settings)
