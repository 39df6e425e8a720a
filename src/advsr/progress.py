"""Progress for long work: a bar per cell (items done, elapsed, ETA) and the step inside it.

On a terminal, a rich bar on stderr. When stderr is a file or a pipe (a job under
``nohup``, a cluster's log), plain lines instead, at most one every :data:`LINE_EVERY`
seconds and none for work that ends sooner, so a log shows a long job is alive::

    advsr: ifgsm@16/255 vs sr:model=imdn,scale=2 (adaptive): 24/64 rows, 0.41 rows/s,
    58 s, ETA 97 s (step 7/10)

``ADVSR_PROGRESS=0`` turns progress off, ``ADVSR_PROGRESS=1`` on (lines or a bar);
``ADVSR_PROGRESS_EVERY=S`` sets the seconds between plain lines (0 to 3600; 0 prints one
per item).
Inside a bar, long loops (the attack engine's steps, a universal perturbation, training)
report their step through :func:`step`, so a cell that works for minutes on one
item does not sit silently at 0/N.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, TextIO

__all__ = ["Progress", "progress_bar", "progress_enabled", "step"]


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


LINE_EVERY = 15.0
"""Seconds between two plain progress lines (``$ADVSR_PROGRESS_EVERY`` overrides it)."""


def line_every() -> float:
    """Seconds between plain lines: ``$ADVSR_PROGRESS_EVERY`` if it is a number in
    ``[0, 3600]``, else :data:`LINE_EVERY`."""
    try:
        every = float(os.environ.get("ADVSR_PROGRESS_EVERY", LINE_EVERY))
    except ValueError:
        return LINE_EVERY
    return every if 0.0 <= every <= 3600.0 else LINE_EVERY


class _Lines:
    """Plain progress lines for a file or a pipe:
    ``advsr: desc: k/n rows, rate, elapsed, ETA [note]``."""

    def __init__(
        self, total: int | None, description: str, out: TextIO, every: float, unit: str = "rows"
    ) -> None:
        self._total, self._description, self._out, self._every = total, description, out, every
        self._unit = unit
        self._done = 0
        self._start = self._last = time.monotonic()
        self._note = ""
        self._printed = False

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._every:
            return
        self._last = now
        self._printed = True
        spent = now - self._start
        of = f"/{self._total}" if self._total is not None else ""
        rate = f", {self._done / spent:.3g} {self._unit}/s" if spent > 0 and self._done else ""
        eta = ""
        if self._total and self._done:
            eta = f", ETA {spent / self._done * (self._total - self._done):.0f} s"
        note = f" {self._note}" if self._note else ""
        self._out.write(
            f"advsr: {self._description}: {self._done}{of} {self._unit}{rate}, {spent:.0f} s"
            f"{eta}{note}\n"
        )
        self._out.flush()

    def advance(self, n: int = 1) -> None:
        self._done += n
        done = self._total is not None and self._done >= self._total
        # a last line only after earlier ones (short work prints nothing)
        self._line(force=done and (self._printed or self._every == 0))

    def note(self, text: str) -> None:
        self._note = text
        self._line()


_ACTIVE: ContextVar[Progress | None] = ContextVar("advsr_progress", default=None)
_LAST_STEP: ContextVar[float] = ContextVar("advsr_progress_step", default=0.0)


def progress_enabled() -> bool:
    """Whether progress is shown: ``ADVSR_PROGRESS`` if set, else yes (a bar on a
    terminal, plain lines elsewhere)."""
    env = os.environ.get("ADVSR_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return True


def step(done: int, total: int, what: str = "step") -> None:
    """Report ``done`` of ``total`` steps of the current item to the active bar (at most a
    few times a second; nothing when no bar is shown)."""
    from advsr.memory import trim_freed_memory

    trim_freed_memory()  # every loop step passes here: freed pages go back (rate-limited)
    bar = _ACTIVE.get()
    if bar is None:
        return
    now = time.monotonic()
    if done < total and now - _LAST_STEP.get() < 0.25:
        return
    _LAST_STEP.set(now)
    bar.note(f"({what} {done}/{total})")


@contextmanager
def progress_bar(
    total: int | None, description: str, enabled: bool | None = None, unit: str = "rows"
) -> Iterator[Progress]:
    """A progress context; yields an object with ``advance`` and ``note``.

    Args:
        total: number of items (``None`` for unknown).
        description: text left of the bar.
        enabled: force on/off; ``None`` follows :func:`progress_enabled`.
        unit: what the items are, in plain lines (rows, steps, epochs, units).
    """
    if not (progress_enabled() if enabled is None else enabled):
        yield _Silent()
        return
    if not sys.stderr.isatty():
        lines = _Lines(total, description, sys.stderr, every=line_every(), unit=unit)
        token = _ACTIVE.set(lines)
        try:
            yield lines
        finally:
            _ACTIVE.reset(token)
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
        rich = _Rich(bar, task, description)
        token = _ACTIVE.set(rich)
        try:
            yield rich
        finally:
            _ACTIVE.reset(token)
