"""The Typer application every command module registers on, and the shared console."""

from __future__ import annotations

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
console = Console(highlight=False, soft_wrap=True)
