"""The Click command that Typer builds from ``advsr.cli.app``, for mkdocs-click.

Typer >= 0.29 vendors its own Click; mkdocs-click accepts its commands as
"click.Command-like" objects, so the reference is generated from the same object that
``advsr --help`` prints.
"""

from __future__ import annotations

import typer.main

from advsr.cli import app

command = typer.main.get_command(app)
