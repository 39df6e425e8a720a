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
import os
import sys

try:  # the C module: `signal` imports enum, and every millisecond before the handler counts
    import _signal as signal
except ImportError:  # pragma: no cover - an interpreter without it
    import signal

from advsr._process import (
    BROKEN_PIPE,
    INTERRUPTED,
    MESSAGE,
    OUTPUT_FAILED,
    _flush_output,
    _on_sigint,
    _Reraise,
    _say,
    _status,
    _Watched,
    interrupted,
    output_failure,
    reset,
    settle,
    state,
    tell_interrupted,
)

TYPE_CHECKING = False  # not `typing`'s: importing typing costs milliseconds too
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

__all__ = ["BROKEN_PIPE", "INTERRUPTED", "MESSAGE", "OUTPUT_FAILED", "main"]


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
    st = state()
    code = st.code
    if st.signals > st.seen and code == 0:
        tell_interrupted()
        code = INTERRUPTED
    code = _flush_output(code)
    if interrupted() or code != st.code:
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
    reset()
    try:  # noqa: SIM105
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread: no signal reaches it anyway
        pass
    atexit.register(_last_word)
    code = _decide(argv)
    if code == INTERRUPTED:
        tell_interrupted()
    code = _flush_output(code)
    st = state()
    st.code, st.seen = code, st.signals
    sys.exit(code)
