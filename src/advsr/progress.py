"""Progress bars for long work: rich on stderr, silent when stderr is not a terminal.

Set ``ADVSR_PROGRESS=1`` to force bars on (``0`` to force them off).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Progress", "progress_bar", "progress_enabled"]


class Progress(Protocol):
    """What long-running library functions call: ``advance(n)`` and ``note(text)``."""

    def advance(self, n: int = 1) -> None: ...

    def note(self, text: str) -> None: ...


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class _Rich:
    def __init__(self, bar: object, task: object, description: str) -> None:
        self._bar = bar
        self._task = task
        self._description = description

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)  # type: ignore[attr-defined]

    def note(self, text: str) -> None:
        self._bar.update(self._task, description=f"{self._description} {text}")  # type: ignore[attr-defined]


def progress_enabled() -> bool:
    """Whether bars are shown: ``ADVSR_PROGRESS`` if set, else stderr is a terminal."""
    env = os.environ.get("ADVSR_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return sys.stderr.isatty()


@contextmanager
def progress_bar(
    total: int | None, description: str, enabled: bool | None = None
) -> Iterator[Progress]:
    """A progress bar context; yields an object with ``advance`` and ``note``.

    Args:
        total: number of steps (``None`` for unknown).
        description: text left of the bar.
        enabled: force on/off; ``None`` follows :func:`progress_enabled`.
    """
    if not (progress_enabled() if enabled is None else enabled):
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield _Rich(bar, task, description)
