"""The ``advsr`` program (console script and ``python -m advsr``): Ctrl-C and a failing
stdout handled from the first instant to the last.

This module imports only the standard library, so :func:`main` installs its SIGINT handler
before Typer, torch or any advsr command module is imported (that import takes seconds).
Then:

* Ctrl-C at any moment (the imports, a command, its end, the exit handlers) prints one
  line, ``advsr: interrupted (rows already computed are in the store)``, and exits with
  status 130; never a traceback. A Ctrl-C that a library swallows or turns into an error of
  its own still ends so. Once the command's outcome is decided, SIGINT only counts (three
  more force the exit); a Ctrl-C after a reported error keeps that error's status, and one
  in the interpreter's last teardown, after every exit handler, is ignored (the run is
  complete and its output written).
* stdout closed (``advsr ... >&-``) or failing (``> /dev/full``): one line,
  ``advsr: error: cannot write the output: <why>``, exit status 2.
* a reader that stops early (``advsr list attacks | head -1``): no message, exit status 141,
  what the shell reports for ``cat`` or ``ls`` in the same spot (128 + SIGPIPE), so a
  ``set -o pipefail`` script treats advsr as it treats them.

Once an output failure is seen, stdout is pointed at the null device so that the
interpreter's last flush cannot fail again.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys

try:  # the C module: `signal` imports enum, and every millisecond before the handler counts
    import _signal as signal
except ImportError:  # pragma: no cover - an interpreter without it
    import signal

TYPE_CHECKING = False  # not `typing`'s: importing typing costs milliseconds too
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import FrameType
    from typing import Any, NoReturn, TextIO

__all__ = [
    "BROKEN_PIPE",
    "INTERRUPTED",
    "MESSAGE",
    "OUTPUT_FAILED",
    "begin",
    "interrupted",
    "main",
    "output_failure",
    "settle",
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


def _import_cli() -> Callable[[list[str] | None], None]:
    """advsr's command line, imported (Typer, torch...) with :class:`_Reraise` first."""
    finder = _Reraise()
    sys.meta_path.insert(0, finder)
    try:
        from advsr.cli.main import main as cli_main
    finally:
        sys.meta_path.remove(finder)
    if interrupted():  # a Ctrl-C that the last module swallowed
        raise KeyboardInterrupt
    return cli_main


def _run(argv: list[str] | None) -> int:
    """Import the command line and run it; its exit status."""
    if sys.stdout is None:  # started with fd 1 closed (`advsr ... >&-`)
        _say("advsr: error: cannot write the output: stdout is closed")
        return OUTPUT_FAILED
    sys.stdout = _Watched(sys.stdout)
    cli_main = _import_cli()
    try:
        cli_main(argv)
    except SystemExit as exc:
        failed = output_failure(exc)
        return _status(exc) if failed is None else failed
    except OSError as exc:
        failed = output_failure(exc)
        if failed is None:
            raise
        return failed
    return 0


def _attempt(argv: list[str] | None) -> int:
    """:func:`_run` with Ctrl-C as status 130; SIGINT is only counted afterwards."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        return INTERRUPTED
    finally:
        settle()


def _decide(argv: list[str] | None) -> int:
    """The exit status of the run: 130 for any Ctrl-C before the outcome was decided."""
    try:
        code = _attempt(argv)
    except KeyboardInterrupt:  # a second Ctrl-C that landed in the first one's handling
        settle()
        code = INTERRUPTED
    # an error already reported keeps its status (the command line reports a Ctrl-C that a
    # library turned into an error as the interruption it was)
    return INTERRUPTED if code == 0 and interrupted() else code


def _last_word() -> None:
    """The last exit handler (registered first, so it runs after all others).

    A Ctrl-C during the other handlers still ends with the interrupted line and 130; stdout
    gets its last flush here, where a failure can still set the status. After a Ctrl-C the
    process ends here (``os._exit``; the store is committed): the interpreter's own exit
    could still end by SIGINT (status -2, seen once in some twenty interrupted runs, after
    the line; CPython does so when a KeyboardInterrupt once went unhandled through embedded
    code), and its teardown of torch takes seconds. Otherwise SIGINT is ignored for that
    teardown.
    """
    code = _STATE.code
    if _STATE.signals > _STATE.seen and code == 0:
        tell_interrupted()
        code = INTERRUPTED
    code = _flush_output(code)
    if interrupted() or code != _STATE.code:
        os._exit(code)
    try:  # noqa: SIM105
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the ``advsr`` command line with the guarantees of the module docstring.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
    """
    global _STATE
    _STATE = _State()
    try:  # noqa: SIM105
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread: no signal reaches it anyway
        pass
    atexit.register(_last_word)
    code = _decide(argv)
    if code == INTERRUPTED:
        tell_interrupted()
    code = _flush_output(code)
    _STATE.code, _STATE.seen = code, _STATE.signals
    sys.exit(code)
