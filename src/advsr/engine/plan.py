"""Planning: every cell of a run validated and planned before any work starts.

A spec whose last cell is invalid therefore stores nothing. Planning builds each cell's
:class:`~advsr.engine.cell.Plan` (its items, its pure row generator, its provenance inputs)
and refuses a setting the user gave that no cell uses.

Example:
    >>> from advsr.engine.context import Context
    >>> ((exp, plan),) = plan_cells([("eval-sr", {"data": "samples", "hr_crop": 32})], Context())
    >>> exp.name, len(plan.items)
    ('eval-sr', 8)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from advsr.engine.cell import EXPERIMENTS, Experiment, Plan
from advsr.engine.context import Context
from advsr.engine.inputs import inputs_of
from advsr.errors import InputError
from advsr.settings import collect_ignored, validate

__all__ = ["plan_cells"]


def plan_cells(
    cells: Iterable[tuple[str, Mapping[str, Any]]], ctx: Context
) -> list[tuple[Experiment, Plan]]:
    """Validate and plan every ``(experiment, settings)`` cell; nothing is computed.

    Raises:
        AdvsrError: an unknown experiment or an invalid cell (the first one found).
    """
    out = []
    ignored: list[dict[str, str]] = []
    for name, settings in cells:
        exp = EXPERIMENTS.get(name)
        cfg = validate(exp.config, dict(settings), f"{exp.name} setting")
        with collect_ignored() as ign:
            plan = exp.plan(cfg, ctx)
        ignored.append(dict(ign))
        plan.info.setdefault("inputs", inputs_of(cfg, ctx))  # provenance, beside the cell
        out.append((exp, plan))
    _refuse_unused(out, ignored)
    return out


def _refuse_unused(
    plans: Sequence[tuple[Experiment, Plan]], ignored: Sequence[Mapping[str, str]]
) -> None:
    """Refuse a setting the user gave that no cell of the run uses (every attack-configuring
    cell given it ignores it), naming both sides, instead of dropping it silently."""
    used: dict[str, int] = {}
    for (_, plan), ign in zip(plans, ignored, strict=True):
        if "__attack__" not in ign:  # a cell without an attack (clean accuracy) says nothing
            continue
        for k in plan.config.model_fields_set:
            if k not in ign and getattr(plan.config, k, None) is not None:
                used[k] = used.get(k, 0) + 1
    for k in sorted({k for ign in ignored for k in ign if k != "__attack__"}):
        if not used.get(k):
            reason = next(ign[k] for ign in ignored if k in ign)
            raise InputError(f"{k} is given but no cell uses it: {reason}")
