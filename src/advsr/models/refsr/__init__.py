"""Reference-based SR (RefSR) models: create a registered model by name and scale.

Every model maps ``forward(lr, ref)``, LR ``(N, 3, h, w)`` and Ref ``(N, 3, H, W)`` in
``[0, 1]`` (by default ``H = s*h``, ``W = s*w``), to SR ``(N, 3, s*h, s*w)``, clamped to
``[0, 1]`` in eval mode. No pretrained weights exist in advsr: models train from scratch;
each entry has a ``tiny`` configuration for tests and smoke runs on a CPU.

Registered models:

* ``ttsr``: TTSR-style texture transformer (global hard attention at 3 scales),
  :class:`advsr.models.refsr.ttsr.TTSR`;
* ``corr-refsr``: two-branch model with soft local correlation alignment,
  :class:`advsr.models.refsr.simple.CorrRefSR`.

Example:
    >>> import torch
    >>> m = create_refsr_model("ttsr", **REFSR_MODELS.get("ttsr").tiny)
    >>> m(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from advsr.checks import check_scale
from advsr.errors import AdvsrError, InputError, ModelLoadError
from advsr.io import read_safetensors_metadata
from advsr.models.loading import build_arch, load_weights
from advsr.models.refsr.simple import CorrRefSR
from advsr.models.refsr.ttsr import TTSR, load_vgg19_features, vgg19_features
from advsr.models.refsr.zoo import REFSR_MODELS, RefSRModelEntry, register_refsr_model
from advsr.models.sr import file_options, file_scale
from advsr.registry import import_entries

__all__ = [
    "REFSR_MODELS",
    "TTSR",
    "CorrRefSR",
    "RefSRModelEntry",
    "create_refsr_model",
    "load_refsr",
    "load_vgg19_features",
    "register_refsr_model",
    "vgg19_features",
]

ENTRY_MODULES = ("ttsr", "simple")
"""The modules that register a RefSR model, each beside its architecture (one list)."""

import_entries(__name__, ENTRY_MODULES)


def create_refsr_model(name: str, scale: int = 4, **arch: Any) -> nn.Module:
    """Build a RefSR model with fresh weights, in eval mode.

    Args:
        name: registered name (``REFSR_MODELS.names()``).
        scale: SR factor; must be one the entry supports.
        **arch: architecture options overriding the entry's defaults.

    Returns:
        the model (call ``.train()`` to train it).

    Raises:
        UnknownNameError: unknown name (with the closest known one).
        InputError: unsupported scale, unknown or invalid option.

    Example:
        >>> create_refsr_model("corr-refsr", 4, colour=1)
        Traceback (most recent call last):
        ...
        advsr.errors.InputError: corr-refsr has no architecture option 'colour'; \
options: n_feats, enc_blocks, n_resblocks, window, matching, temperature
    """
    entry = REFSR_MODELS.get(name)
    check_scale(scale)
    if scale not in entry.scales:
        have = ", ".join(str(s) for s in entry.scales)
        raise InputError(f"{name} does not support scale {scale} (supported: {have})")
    return build_arch(name, entry.arch, scale, {**entry.options, **arch}).eval()


def load_refsr(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A RefSR model written by :func:`advsr.training.refsr.train_refsr` (architecture from
    its metadata), in eval mode.

    Raises:
        InputError: no such file, or one that ``advsr train-refsr`` did not write.
        ModelLoadError: metadata that describes no model, unsafe or mismatching weights.
    """
    if not Path(path).is_file():
        raise InputError(f"no such model file: {path}")
    meta = read_safetensors_metadata(path)
    if "advsr_refsr" not in meta:
        raise InputError(f"{path} was not written by advsr train-refsr")
    # the metadata is untrusted: every value is checked (names, a scale, bounded options)
    name, scale = meta["advsr_refsr"], file_scale(path, meta)
    arch = file_options(path, meta) if "advsr_arch" in meta else {}
    try:
        model = create_refsr_model(name, scale, **arch)
    except AdvsrError as exc:
        raise ModelLoadError(f"{path}: its metadata does not describe a model: {exc}") from None
    load_weights(model, path, name=name)
    return model.to(device).eval()
