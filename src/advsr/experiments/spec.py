"""Experiment specs: a TOML file (or a dict) naming an experiment, a grid and settings.

A spec expands into cells, the cartesian product of its grid, each merged with the fixed
settings and validated by the experiment's pydantic config class::

    experiment = "eval-sr"

    [grid]
    model = ["bicubic"]
    scale = [2, 4]
    data = ["samples", "path/to/Set5"]

    [settings]
    hr_crop = 128

Validation problems become one-line :class:`~advsr.errors.InputError` messages.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from advsr.errors import InputError

__all__ = ["ExperimentSpec", "load_spec", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Build ``model`` from ``data``; the first problem becomes a one-line InputError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "spec"
        raise InputError(f"invalid {where}: {err.get('msg', 'invalid value')}") from None


class ExperimentSpec(BaseModel):
    """An experiment name, a grid of values to cross, and fixed settings.

    Attributes:
        experiment: registered experiment name (``"eval-sr"``).
        grid: parameter -> list of values; cells are their cartesian product, in order.
        settings: parameters shared by every cell.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: str
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    def cells(self) -> list[dict[str, Any]]:
        """The grid expanded to one settings dict per cell (grid values override settings)."""
        for k, v in self.grid.items():
            if not v:
                raise InputError(f"grid parameter {k!r} has no values")
            if k in self.settings:
                raise InputError(f"{k!r} is both in [grid] and in [settings]")
        keys = list(self.grid)
        return [
            {**self.settings, **dict(zip(keys, combo, strict=True))}
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a TOML spec file.

    Raises:
        InputError: missing file, TOML syntax error, or an invalid spec.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such spec file: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p} is not valid TOML: {exc}") from None
    return validate(ExperimentSpec, data)
