"""Experiment specs: TOML files naming registered experiments, grids and settings.

A spec expands into cells, the cartesian product of a grid, each merged with the fixed
settings; the driver validates every cell before any work starts::

    experiment = "eval-sr"

    [grid]
    scale = [2, 4]
    data = ["samples", "path/to/Set5"]

    [settings]
    hr_crop = 128

Several experiments in one file use ``[[run]]`` tables, each with its own ``experiment``,
``grid`` and ``settings``::

    [[run]]
    experiment = "eval-sr"
    grid = { scale = [2, 4] }

    [[run]]
    experiment = "attack-sr"
    grid = { eps = [0.0078431, 0.0313725] }
    settings = { model = "demo-edsr", steps = 5 }

Validation problems become one-line :class:`~advsr.errors.InputError` messages; a grid of more
than :data:`MAX_CELLS` cells is refused before it is expanded.

Example:
    >>> spec = parse_spec({"experiment": "eval-sr", "grid": {"scale": [2, 4]}})
    >>> [(name, cell["scale"]) for name, cell in spec.cells()]
    [('eval-sr', 2), ('eval-sr', 4)]
"""

from __future__ import annotations

import itertools
import math
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field

from advsr.errors import InputError
from advsr.settings import Settings, validate

__all__ = ["MAX_CELLS", "ExperimentSpec", "SpecFile", "load_spec", "parse_spec"]

MAX_CELLS = 100_000
"""The most cells a spec may expand to (a larger grid is almost certainly a mistake)."""


class ExperimentSpec(Settings):
    """An experiment name, a grid of values to cross, and fixed settings.

    Attributes:
        experiment: registered experiment name (``"eval-sr"``).
        grid: parameter -> list of values; cells are their cartesian product, in order.
        settings: parameters shared by every cell.
    """

    experiment: str
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    def size(self) -> int:
        """Number of cells, without expanding the grid."""
        return math.prod(len(v) for v in self.grid.values())

    def cells(self) -> list[dict[str, Any]]:
        """The grid expanded to one settings dict per cell (grid values override settings).

        Raises:
            InputError: an empty grid list, a key both in the grid and the settings, or more
                than :data:`MAX_CELLS` cells.
        """
        for k, v in self.grid.items():
            if not v:
                raise InputError(f"grid parameter {k!r} has no values")
            if k in self.settings:
                raise InputError(f"{k!r} is both in [grid] and in [settings]")
        if self.size() > MAX_CELLS:
            raise InputError(
                f"the grid of {self.experiment} has {self.size():,} cells; at most "
                f"{MAX_CELLS:,} are allowed in one spec"
            )
        keys = list(self.grid)
        return [
            {**self.settings, **dict(zip(keys, combo, strict=True))}
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]


class SpecFile(Settings):
    """One or more :class:`ExperimentSpec` parts, run in order."""

    parts: list[ExperimentSpec] = Field(min_length=1)

    def cells(self) -> list[tuple[str, dict[str, Any]]]:
        """Every cell of every part as ``(experiment, settings)``."""
        total = sum(p.size() for p in self.parts)
        if total > MAX_CELLS:
            raise InputError(f"the spec has {total:,} cells; at most {MAX_CELLS:,} are allowed")
        return [(p.experiment, cell) for p in self.parts for cell in p.cells()]

    @property
    def experiments(self) -> list[str]:
        """The experiments named, in order, once each."""
        return list(dict.fromkeys(p.experiment for p in self.parts))


def parse_spec(data: dict[str, Any]) -> SpecFile:
    """A spec from its parsed TOML (the single-experiment or the ``[[run]]`` form).

    Raises:
        InputError: an invalid spec.
    """
    if "run" in data:
        extra = sorted(set(data) - {"run"})
        if extra:
            raise InputError(f"a spec with [[run]] tables has no other keys (found {extra})")
        runs = data["run"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise InputError("run must be an array of tables: [[run]]")
        parts = [validate(ExperimentSpec, r, f"run[{i}]") for i, r in enumerate(runs)]
        return validate(SpecFile, {"parts": parts})
    return SpecFile(parts=[validate(ExperimentSpec, data, "spec")])


def load_spec(path: str | Path) -> SpecFile:
    """Read and validate a TOML spec file.

    Raises:
        InputError: missing file, TOML syntax error (duplicate keys included), an invalid
            spec.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such spec file: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a byte-order mark is text
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p} is not valid TOML: {exc}") from None
    return parse_spec(data)
