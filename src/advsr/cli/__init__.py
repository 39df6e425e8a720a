"""The ``advsr`` command line (Typer + rich). Thin: parse, build a config, call the library,
print.

Every command prints a human table by default and one JSON document on stdout with
``--json``. A user error prints one line on stderr and exits with status 2. One module per
command group registers its commands on :data:`app`; experiment commands derive their
options from the experiment's config (:mod:`advsr.cli.derive`).
"""

from advsr.cli import (  # registers
    backdoor,
    catalog,
    classifier,
    demo,
    leaderboard,
    reproduce,
    sr,
    store,
    train,
)
from advsr.cli.app import app
from advsr.cli.main import main

_ORDER = [
    "demo", "eval-sr", "attack-sr", "transfer", "attack-clf", "defend", "perceptual",
    "explain", "manifold", "train-refsr", "backdoor", "reproduce", "leaderboard", "run",
    "results", "report", "experiments", "list", "datasets", "models", "defenses", "train-sr",
    "train-classifier", "convert",
]  # fmt: skip


def _name(info: object) -> str:
    cb = getattr(info, "callback", None)
    return getattr(info, "name", None) or getattr(cb, "__name__", "").replace("_", "-")


app.registered_commands.sort(
    key=lambda c: _ORDER.index(_name(c)) if _name(c) in _ORDER else len(_ORDER)
)

__all__ = [
    "app",
    "backdoor",
    "catalog",
    "classifier",
    "demo",
    "leaderboard",
    "main",
    "reproduce",
    "sr",
    "store",
    "train",
]
