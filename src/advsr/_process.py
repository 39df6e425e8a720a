"""The state of one ``advsr`` process: Ctrl-C and a failing stdout, for
:mod:`advsr._entry` (which runs the command line) and :mod:`advsr.cli.main` (which reports
a command's outcome).

This module imports only the standard library, so the SIGINT handler is in place before
Typer, torch or any advsr command module is imported. What the guarantees are is told in
:mod:`advsr._entry`.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # not `typing`'s: importing typing costs milliseconds too
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import FrameType
    from typing import Any, TextIO

__all__ = [
    "BROKEN_PIPE",
    "INTERRUPTED",
    "MESSAGE",
    "OUTPUT_FAILED",
    "begin",
    "interrupted",
    "output_failure",
    "reset",
    "settle",
    "state",
    "tell_interrupted",
]

INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT)."""
BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away (128 + SIGPIPE)."""
OUTPUT_FAILED = 2
"""Exit status when stdout is closed or cannot be written (a problem of the environment)."""
MESSAGE = "advsr: interrupted (rows already computed are in the store)"
"""The one line Ctrl-C prints on stderr."""
FORCE_AFTER = 3
"""SIGINTs after the outcome is decided that end the process at once (a stuck shutdown)."""


class _State:
    """What the handler and the exit path share (one program run per process)."""

    def __init__(self) -> None:
        self.signals = 0  # SIGINTs received
        self.settled = False  # the outcome is being decided: SIGINT only counts
        self.late = 0  # SIGINTs received once settled
        self.told = False  # the interrupted line is written
        self.code = 0  # the exit status decided
        self.seen = 0  # signals when the exit status was decided
        self.output_error: OSError | None = None  # the first failure to write stdout
        self.output_told = False  # its line is written
        self.insisting = False  # a thread re-raises a Ctrl-C that some code swallowed


_STATE = _State()


def reset() -> None:
    """A fresh state for one run of the command line (:func:`advsr._entry.main`)."""
    global _STATE
    _STATE = _State()


def state() -> _State:
    """The state of the current run."""
    return _STATE


def begin() -> None:
    """A command starts: forget the lines the last one printed (for callers that run
    :func:`advsr.cli.main` more than once in a process); the SIGINTs counted stay."""
    _STATE.told = False
    _STATE.output_told = False
    _STATE.output_error = None


def interrupted() -> bool:
    """Whether a SIGINT reached this process since :func:`main` started."""
    return _STATE.signals > 0


def settle() -> None:
    """From now on a SIGINT is counted but raises nothing (the outcome is being reported)."""
    _STATE.settled = True


def _say(line: str) -> None:
    """Write one line on stderr; never fails (stderr may be closed or broken)."""
    try:
        err = sys.stderr
        if err is None:
            raise OSError(errno.EBADF, "stderr is closed")
        err.write(line + "\n")
        err.flush()
    except (OSError, ValueError):
        try:  # noqa: SIM105 (contextlib is an import this module avoids)
            os.write(2, (line + "\n").encode(errors="replace"))
        except OSError:
            pass


def tell_interrupted() -> None:
    """Print the interrupted line, once per run."""
    if not _STATE.told:
        _STATE.told = True
        _say(MESSAGE)


def _insist() -> None:
    """After a Ctrl-C, raise KeyboardInterrupt in the main thread again every second until
    the outcome is being reported: code that swallows one (torch's C code does, inside its
    NumPy import, which may run lazily long after start) cannot keep a Ctrl-C'd run going
    for the rest of its work."""
    import _thread
    import time

    for _ in range(600):
        time.sleep(1.0)
        if _STATE.settled:
            return
        _thread.interrupt_main()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGINT: a KeyboardInterrupt while the command runs; once settled, only counted."""
    _STATE.signals += 1
    if not _STATE.settled:
        if not _STATE.insisting:
            import threading

            _STATE.insisting = True
            threading.Thread(target=_insist, name="advsr-ctrl-c", daemon=True).start()
        raise KeyboardInterrupt
    _STATE.late += 1
    if _STATE.late >= FORCE_AFTER:  # the user insists: a shutdown that hangs ends here
        tell_interrupted()
        os._exit(INTERRUPTED)


class _Watched:
    """``sys.stdout`` with its write errors remembered, to tell a failing stdout from any
    other OSError (and from the ``SystemExit(1)`` rich and Typer raise after a broken pipe).
    Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text``; a failure is remembered, then raised."""
        try:
            return self._stream.write(text)
        except OSError as exc:
            _STATE.output_error = exc
            raise

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the stream; a failure is remembered, then raised."""
        try:
            self._stream.flush()
        except OSError as exc:
            _STATE.output_error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _silence(stream: object, fd: int) -> None:
    """Point ``stream``'s file descriptor (else ``fd``) at the null device, so that what
    is still buffered and the interpreter's last flush go nowhere instead of failing."""
    try:
        target = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        target = fd
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, target)
    except OSError:
        pass
    finally:
        os.close(null)


def _stdout_failing() -> bool:
    """Whether stdout is missing or cannot take what is buffered for it."""
    out = sys.stdout
    if out is None:
        return True
    try:
        out.flush()
    except (OSError, ValueError):
        return True
    return False


def _output_failed(exc: OSError) -> int:
    """Report a failure of stdout once (none for a broken pipe), silence stdout and return
    the exit status: :data:`BROKEN_PIPE` or :data:`OUTPUT_FAILED`."""
    _STATE.output_error = exc
    _silence(sys.stdout, 1)
    if exc.errno == errno.EPIPE:
        return BROKEN_PIPE
    if not _STATE.output_told:
        _STATE.output_told = True
        why = exc.strerror or str(exc) or type(exc).__name__
        _say(f"advsr: error: cannot write the output: {why}")
    return OUTPUT_FAILED


def output_failure(exc: BaseException) -> int | None:
    """The exit status when ``exc`` is a failure to write stdout (after its one line, if
    any, and after silencing stdout); None when it is something else.

    A broken pipe is quiet (:data:`BROKEN_PIPE`); any other failure prints
    ``advsr: error: cannot write the output: <why>`` (:data:`OUTPUT_FAILED`). The
    ``SystemExit(1)`` that rich and Typer raise after a broken pipe is recognised by the
    error it was raised from.

    Args:
        exc: what ended the command.
    """
    cause = exc.__context__ if isinstance(exc, SystemExit) else exc
    if not isinstance(cause, OSError):
        return None
    if cause is not _STATE.output_error and (isinstance(exc, SystemExit) or not _stdout_failing()):
        return None
    return _output_failed(cause)


def _flush_output(code: int) -> int:
    """Flush stdout and stderr; the exit status once a failure of stdout is reported."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as exc:
        error = exc if isinstance(exc, OSError) else OSError(errno.EBADF, "stdout is closed")
        if code == INTERRUPTED:  # its line is the one line
            _STATE.output_error = error
            _silence(sys.stdout, 1)
        else:
            failed = _output_failed(error)
            code = failed if code in (0, BROKEN_PIPE) else code
    else:
        if _STATE.output_error is not None and code == 0:  # a failure some code swallowed
            code = _output_failed(_STATE.output_error)
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        _silence(sys.stderr, 2)
    return code


def _status(exc: SystemExit) -> int:
    """The exit status a SystemExit asks for (a text is printed, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    _say(str(exc.code))
    return 1


class _Reraise:
    """A meta path finder for the imports before the command runs: after a Ctrl-C that a
    module swallowed (torch's C code reads a KeyboardInterrupt in its NumPy import as
    "NumPy is not available"), the next import raises it again, so that the imports, which
    take seconds, stop at once."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        """Raise KeyboardInterrupt after a Ctrl-C; else leave the import to the others."""
        if _STATE.signals and not _STATE.settled:
            raise KeyboardInterrupt
