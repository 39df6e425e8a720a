"""Strict, safe loading of weight files into any advsr model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from advsr.errors import ModelLoadError, brief

__all__ = ["StateDict", "fits", "is_torchscript", "load_torchscript", "load_weights"]

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


def fits(model: nn.Module, sd: StateDict) -> bool:
    """Whether ``sd`` has exactly ``model``'s keys and shapes (batch counters aside); works
    on models built on the ``meta`` device."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    return own.keys() == theirs.keys() and all(own[k].shape == theirs[k].shape for k in own)


def is_torchscript(path: str | Path) -> bool:
    """Whether a file is a TorchScript archive (a zip holding compiled code)."""
    import zipfile

    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    try:
        with zipfile.ZipFile(p) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_torchscript(path: str | Path) -> nn.Module:
    """Load a TorchScript file on the CPU (compiled code, no pickled Python classes).

    Raises:
        ModelLoadError: missing or not a readable TorchScript file.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"no such TorchScript file: {p}")
    try:
        return torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # RuntimeError for damaged or non-TorchScript files
        raise ModelLoadError(f"{p} is not a TorchScript file ({brief(exc)})") from None
