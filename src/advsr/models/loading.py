"""Strict, safe loading of weight files into any advsr model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from advsr.errors import ModelLoadError

__all__ = ["StateDict", "load_weights"]

StateDict = dict[str, torch.Tensor]


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def load_weights(
    model: nn.Module,
    path: str | Path,
    *,
    adapt: Callable[[StateDict], StateDict] | None = None,
    name: str = "model",
) -> None:
    """Load a weight file into ``model`` with strict key and shape matching.

    Raises:
        ModelLoadError: one line listing missing keys, unexpected keys and shape mismatches.
    """
    from advsr.io import load_state_dict

    sd = load_state_dict(path)
    if adapt is not None:
        sd = adapt(sd)
    own = model.state_dict()
    # BatchNorm's batch counter is absent from files saved before PyTorch 0.4.1; it plays no
    # part in evaluation, so the model's own value is kept
    for k in own:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = own[k]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} file {_shape(sd[k])} vs model {_shape(own[k])}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatches", shapes),
        ):
            if items:
                more = f" +{len(items) - 3} more" if len(items) > 3 else ""
                parts.append(f"{len(items)} {label} ({'; '.join(items[:3])}{more})")
        raise ModelLoadError(f"{path} does not fit {name}: " + ", ".join(parts))
    model.load_state_dict(sd, strict=True)
