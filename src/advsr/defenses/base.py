"""The Defense contract (DESIGN.md): an input transformation with explicit flags.

``differentiable``: gradients through ``forward`` are meaningful (attack it directly);
``stochastic``: ``forward`` draws randomness (evaluate with EOT). ``surrogate(x)`` is the
differentiable approximation BPDA uses in the backward pass (identity unless a better one
exists). Random parameters are drawn separately from the deterministic kernel.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["Defense"]


class Defense(nn.Module):
    """Base class of input-transformation defenses ``(N, 3, H, W) -> (N, 3, H, W)``."""

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable stand-in for BPDA (identity by default).

        Shape:
            ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.
        """
        return x
