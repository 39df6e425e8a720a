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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advsr.checks import check_scale
from advsr.errors import InputError
from advsr.models.loading import build_arch
from advsr.models.refsr.simple import CorrRefSR
from advsr.models.refsr.ttsr import TTSR, load_vgg19_features, vgg19_features
from advsr.registry import Registry

__all__ = [
    "REFSR_MODELS",
    "TTSR",
    "CorrRefSR",
    "RefSRModelEntry",
    "create_refsr_model",
    "load_vgg19_features",
    "vgg19_features",
]


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


REFSR_MODELS: Registry[RefSRModelEntry] = Registry("RefSR model")

REFSR_MODELS.register(
    "ttsr",
    RefSRModelEntry(
        TTSR,
        (4,),
        "TTSR-style texture transformer (LTE, hard/soft attention at 3 scales, no CSFI)",
        {"n_feats": 64, "n_resblocks": 16, "level_blocks": (16, 8, 4)},
        tiny={"n_feats": 8, "n_resblocks": 1, "level_blocks": (1, 1, 1), "lte_channels": (4, 8, 8)},
        reference="Yang et al. CVPR 2020; researchmm/TTSR model/{LTE,SearchTransfer,MainNet}.py",
    ),
    "TTSR-style texture transformer",
)
REFSR_MODELS.register(
    "corr-refsr",
    RefSRModelEntry(
        CorrRefSR,
        (2, 3, 4),
        "two-branch RefSR, soft local-correlation alignment, PixelShuffle decoder",
        {"n_feats": 64, "enc_blocks": 4, "n_resblocks": 16, "window": 7},
        tiny={"n_feats": 8, "enc_blocks": 1, "n_resblocks": 1, "window": 3},
        reference="advsr (local cost-volume attention as in MASA-SR's refinement)",
    ),
    "two-branch soft-correlation RefSR",
)


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
