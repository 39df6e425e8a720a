"""Module modes: run models in eval mode and give every submodule its own flag back.

Attacks, explanations, backdoor evaluation and experiments all need the same guarantee:
a model runs in eval mode (dropout off, batch-norm statistics frozen) for the duration, and
afterwards each submodule is in exactly the mode it was in, so a model with, say, a frozen
eval-mode block inside a training one keeps it.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Dropout(), nn.Linear(2, 2)).train()
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the duration; afterwards every submodule gets its own
    flag back.

    Args:
        modules: the modules (each with all its submodules).
    """
    flags = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for sub, was in flags:
            sub.training = was
