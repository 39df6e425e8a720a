"""The SR model zoo: create any registered SR model by name and scale.

Example:
    >>> import torch
    >>> model = create_sr_model("bicubic", scale=4)
    >>> model(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 3, 64, 64])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from torch import nn

from advsr.checks import check_scale
from advsr.errors import InputError, ModelLoadError
from advsr.models.sr.bicubic import Bicubic
from advsr.registry import Registry

__all__ = ["SR_MODELS", "Bicubic", "SRModelEntry", "create_sr_model", "list_sr_models"]


@dataclass(frozen=True)
class SRModelEntry:
    """A zoo entry.

    Attributes:
        factory: ``scale -> nn.Module`` mapping ``(N,3,h,w)`` in [0,1] to ``(N,3,s*h,s*w)``.
        scales: the scale factors the architecture supports.
        description: one line for ``advsr models``.
        needs_weights: whether the model is meaningless without a weight file.
    """

    factory: Callable[[int], nn.Module]
    scales: tuple[int, ...]
    description: str
    needs_weights: bool = True


SR_MODELS: Registry[SRModelEntry] = Registry("SR model")
SR_MODELS.register(
    "bicubic",
    SRModelEntry(
        factory=Bicubic,
        scales=(2, 3, 4, 8),
        description="MATLAB-compatible bicubic upscaling (no parameters)",
        needs_weights=False,
    ),
)


def create_sr_model(name: str, scale: int, weights: str | Path | None = None) -> nn.Module:
    """Build a zoo model in eval mode.

    Args:
        name: registered name (see :func:`list_sr_models`).
        scale: SR factor; must be one the architecture supports.
        weights: a weight file for models that have parameters.

    Raises:
        UnknownNameError: unknown model name.
        InputError: unsupported scale, or weights given to a parameter-free model.
    """
    entry = SR_MODELS.get(name)
    check_scale(scale)
    if scale not in entry.scales:
        have = ", ".join(str(s) for s in entry.scales)
        raise InputError(f"{name} does not support scale {scale} (supported: {have})")
    if weights is not None and not entry.needs_weights:
        raise InputError(f"{name} has no parameters; it takes no weight file")
    model = entry.factory(scale)
    if weights is not None:  # never silently ignore a weight file
        raise ModelLoadError(f"no weight loader is registered for {name}")
    return model.eval()


class SRModelInfo(TypedDict):
    """One row of :func:`list_sr_models`."""

    name: str
    scales: list[int]
    params: int
    description: str


def list_sr_models() -> list[SRModelInfo]:
    """Name, scales, parameter count (at the first scale) and description of every model."""
    rows: list[SRModelInfo] = []
    for name in SR_MODELS.names():
        e = SR_MODELS.get(name)
        m = e.factory(e.scales[0])
        rows.append(
            {
                "name": name,
                "scales": list(e.scales),
                "params": sum(p.numel() for p in m.parameters()),
                "description": e.description,
            }
        )
    return rows
