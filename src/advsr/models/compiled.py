"""Opt-in ``torch.compile`` of a model for the attack loops, with a fallback to eager.

Compilation happens on the first call; where it fails (no C++ compiler, an operator the
compiler does not support, a platform without Inductor) the model runs eagerly from then
on and one :class:`~advsr.errors.AdvsrWarning` says why. Compiled forward and backward
passes agree with eager ones to float tolerance, not bit for bit, so sign-based attacks may
take other steps: an experiment's ``compile`` setting is part of its cell's identity.

Measured on this project's 2-core CPU (``benchmarks/attack_speed.py --compile``): no gain
worth the compile time, so it stays off by default; on a GPU it is worth trying.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from advsr.errors import AdvsrWarning

__all__ = ["CompiledOrEager", "compile_model"]


class CompiledOrEager(nn.Module):
    """A model whose calls go through ``torch.compile(model)`` until that fails once.

    Attributes:
        eager: the wrapped model (its parameters are shared with the compiled callable).
        failed: the reason compilation failed, or None.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.eager = model
        self._compiled: Any = torch.compile(model)
        self.failed: str | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The compiled model's output (the eager one after a compilation failure).

        Shape:
            as the wrapped model.
        """
        if self.failed is None:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as exc:  # any compiler error: fall back, say it once
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                self.failed = f"{type(exc).__name__}: {first}"
                warnings.warn(
                    f"torch.compile failed ({self.failed}); running eagerly",
                    AdvsrWarning,
                    stacklevel=2,
                )
        return self.eager(*args, **kwargs)


def compile_model(model: nn.Module, enabled: bool = True) -> nn.Module:
    """``model`` wrapped in :class:`CompiledOrEager` when ``enabled``, else itself.

    Example:
        >>> m = nn.Linear(2, 2)
        >>> compile_model(m, enabled=False) is m
        True
    """
    return CompiledOrEager(model) if enabled else model
