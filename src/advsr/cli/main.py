"""The entry point and the one top-level handler (which must never fail itself).

* a user error (an :class:`~advsr.errors.AdvsrError`, or a usage error of the command line)
  prints one line on stderr and exits with status 2;
* Ctrl-C prints ``advsr: interrupted`` and exits with status 130 (rows already computed are in
  the store), also when a library turned it into an error of its own; the ``advsr`` program
  (:mod:`advsr._entry`) extends this to the imports and the shutdown;
* stdout closed or failing (``> /dev/full``): one line, exit status 2; a reader that stops
  early (``| head -1``): quiet, exit status 141 (:func:`advsr._process.output_failure`);
* anything else is a bug: one line naming a file that holds the traceback, exit status 1;
  ``ADVSR_DEBUG=1`` prints the traceback instead;
* advsr's warnings (a legal run that is almost certainly a mistake) print one line each,
  ``advsr: warning: ...``; other libraries' warnings only under ``ADVSR_DEBUG=1``.

Click's exceptions are recognised by what they have (``exit_code`` and ``format_message``),
not by names of a vendored module that another Typer version may lack.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
import warnings

from advsr._process import (
    INTERRUPTED,
    begin,
    interrupted,
    output_failure,
    settle,
    tell_interrupted,
)
from advsr.errors import AdvsrError, AdvsrWarning

__all__ = ["main"]


def _fail(message: str, code: int = 2) -> None:
    if interrupted():  # a Ctrl-C that a library turned into an error
        _interrupted()
    text = message.strip()
    first = text.splitlines()[0] if text else "invalid input"
    sys.stderr.write(f"advsr: error: {first}\n")
    sys.exit(code)


def _interrupted() -> None:
    tell_interrupted()
    sys.exit(INTERRUPTED)


def _is_click_error(exc: BaseException) -> bool:
    return hasattr(exc, "exit_code") and hasattr(exc, "format_message")


def _bug(exc: BaseException) -> None:
    if interrupted():  # a Ctrl-C that a library turned into an exception
        _interrupted()
    failed = output_failure(exc)
    if failed is not None:
        sys.exit(failed)
    if os.environ.get("ADVSR_DEBUG") == "1":
        traceback.print_exception(exc)
        sys.exit(1)
    name = type(exc).__name__
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    where = "(the traceback could not be saved)"
    try:
        fd, path = tempfile.mkstemp(
            prefix=f"advsr-bug-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt"
        )
        with os.fdopen(fd, "w") as fh:
            fh.write(f"advsr {' '.join(sys.argv[1:])}\n\n")
            fh.write("".join(traceback.format_exception(exc)))
        where = f"the traceback is in {path}"
    except OSError:
        pass
    sys.stderr.write(
        f"advsr: internal error ({name}: {detail}); {where}: please report it "
        "(ADVSR_DEBUG=1 prints it)\n"
    )
    sys.exit(1)


def _warnings() -> None:
    """advsr's warnings as one line each on stderr; other libraries' warnings (deprecations
    inside torch...) only under ``ADVSR_DEBUG=1``."""
    if os.environ.get("ADVSR_DEBUG") == "1":
        return
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("always", category=AdvsrWarning)

    def show(message: object, category: object, *args: object, **kwargs: object) -> None:
        text = (str(message).strip().splitlines() or [""])[0]
        sys.stderr.write(f"advsr: warning: {text}\n")

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> None:
    """Run the command line (see the module docstring)."""
    begin()
    from advsr.cli import app

    _warnings()
    args = sys.argv[1:] if argv is None else argv
    from advsr.provenance import set_command

    set_command(list(args))
    try:
        try:
            rv = app(args=args or ["--help"], prog_name="advsr", standalone_mode=False)
        finally:
            settle()  # a Ctrl-C from now on is counted, not raised, by the advsr program
    except KeyboardInterrupt:
        _interrupted()
    except AdvsrError as exc:
        _fail(str(exc) or type(exc).__name__)
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # click's answer to Ctrl-C
            _interrupted()
        if _is_click_error(exc):
            message = exc.format_message()  # type: ignore[attr-defined]
            ctx = getattr(exc, "ctx", None)
            if ctx is not None and getattr(exc, "exit_code", 1) == 2:
                message += f" (see `{ctx.command_path} --help`)"
            _fail(message, int(getattr(exc, "exit_code", 2)))
        _bug(exc)
    if rv == 130:  # recent Typer turns Ctrl-C into a quiet exit status 130
        _interrupted()
    sys.exit(rv if isinstance(rv, int) else 0)
