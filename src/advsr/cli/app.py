"""The Typer application every command module registers on, and the shared console."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

__all__ = ["app", "console"]

app = typer.Typer(
    name="advsr",
    help="Adversarial robustness of image super-resolution and of the classifiers it defends.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# a pipe or a file gets 120 columns (rich's 80 folds the wider tables)
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


@app.callback()
def _root(
    threads: str = typer.Option(
        "auto",
        "--threads",
        envvar="ADVSR_THREADS",
        help="CPU threads for torch: auto (the CPUs not busy at start) or a number.",
    ),
    max_memory: str | None = typer.Option(
        None,
        "--max-memory",
        envvar="ADVSR_MAX_MEMORY",
        help="Memory budget of one gradient pass (micro-batches are sized to it): e.g. 3 "
        "(GiB), 1.5G, 800M or 10% of the machine; default 1/16 of the machine, at most 2 GiB "
        "(on a GPU half of its memory).",
    ),
) -> None:
    """Adversarial robustness of image super-resolution and of the classifiers it defends."""
    from advsr.devices import set_threads
    from advsr.memory import return_freed_memory, set_max_memory

    set_threads(threads)
    set_max_memory(max_memory)
    return_freed_memory()
