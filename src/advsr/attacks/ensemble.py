"""Worst case over an ensemble of attacks (AutoAttack's protocol, Croce and Hein 2020).

Each image is attacked by each member in turn, only while no earlier member has fooled the
classifier; robust accuracy is the share that survives every member, and
``diagnostics["broken_by"]`` names, per image, the index of the member that broke it (-1:
none). Presets (every member takes the ensemble's budget):

* ``standard`` - APGD-CE, APGD-T (targeted DLR, 9 targets), Square (5000 queries): AutoAttack's
  standard version without FAB-T (not implemented here; AutoAttack's own ablation finds it
  adds almost nothing after APGD-T);
* ``fast`` - the same members with 20 steps, 3 targets and 500 queries (a smoke test, not an
  evaluation);
* ``rand`` - APGD-CE and APGD-DLR, each with EOT-ready settings for randomised defenses
  (AutoAttack's ``version='rand'``; the EOT draws come from the defended model, see
  :mod:`advsr.defenses.adaptive`).

L2 ensembles use the L2 members (no Square: its L2 variant is not implemented here).
A member can be any attack spec (``members = ["apgd:steps=50", "square:queries=1000"]``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from advsr.attacks.base import ATTACKS, AttackSettings, Raw, create_attack, register_attack
from advsr.errors import InputError

__all__ = ["MAX_MEMBERS", "PRESETS", "EnsembleSettings", "ensemble_members"]

MAX_MEMBERS = 100
"""The most member attacks of an ensemble (AutoAttack's standard version has four)."""

PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "standard": {
        "linf": ("apgd:loss=ce", "apgd-t", "square:queries=5000"),
        "l2": ("apgd-l2:loss=ce", "apgd-t-l2"),
    },
    "fast": {
        "linf": ("apgd:loss=ce,steps=20", "apgd-t:steps=20,targets=3", "square:queries=500"),
        "l2": ("apgd-l2:loss=ce,steps=20", "apgd-t-l2:steps=20,targets=3"),
    },
    "rand": {
        "linf": ("apgd:loss=ce", "apgd:loss=dlr"),
        "l2": ("apgd-l2:loss=ce", "apgd-l2:loss=dlr"),
    },
}


class EnsembleSettings(AttackSettings):
    """A preset, or the member attacks (specs without a budget) in their order."""

    preset: Literal["standard", "fast", "rand"] = "standard"
    members: list[str] = Field(default_factory=list, max_length=MAX_MEMBERS)
    """Attack specs run in this order instead of the preset's (e.g. ``apgd:steps=50``); in
    an attack spec, names joined by ``+`` (``ensemble@8/255:members=apgd+square``)."""

    @field_validator("members", mode="before")
    @classmethod
    def _joined(cls, v: Any) -> Any:
        return [m for m in v.split("+") if m] if isinstance(v, str) else v


def ensemble_members(norm: str, s: EnsembleSettings) -> list[str]:
    """The member specs of an ensemble (checked: known, classifier attacks, no budget).

    Raises:
        InputError: a member with its own budget, an SR attack, or an ensemble.
    """
    members = list(s.members) or list(PRESETS[s.preset][norm])
    for m in members:
        if "@" in m.partition(":")[0]:
            raise InputError(f"ensemble member {m!r} takes the ensemble's budget: drop '@...'")
        entry = ATTACKS.get(m.partition(":")[0])
        if entry.domain != "classifier" or entry.kind == "ensemble":
            raise InputError(f"ensemble member {m!r} must be a classifier attack")
    return members


def _core(norm: str) -> Any:
    def core(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor | None,
        eps: float | None,
        s: Any,
        generator: torch.Generator | None,
    ) -> Raw:
        assert y is not None
        specs = ensemble_members(norm, s)
        x_out = x.detach().clone()
        broken = torch.full((x.shape[0],), -1, dtype=torch.long)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for i, spec in enumerate(specs):
            todo = (~fooled).nonzero()[:, 0]
            if len(todo) == 0:
                break
            attack = create_attack(
                spec, eps=eps if ATTACKS.get(spec.partition(":")[0]).norm != "none" else None
            )
            res = attack(model, x[todo], y[todo], generator=generator)
            hit = res.success.to(x.device)
            if i == 0:
                x_out[todo] = res.x_adv
            x_out[todo[hit]] = res.x_adv[hit]
            fooled[todo[hit]] = True
            broken[todo[hit].cpu()] = i
        return Raw(x_out, diagnostics={"broken_by": broken, "members": tuple(specs)})

    return core


for _name, _ball in (("ensemble", "linf"), ("ensemble-l2", "l2")):
    register_attack(
        _name,
        kind="ensemble",
        domain="classifier",
        norm=_ball,  # type: ignore[arg-type]
        settings=EnsembleSettings,
        core=_core(_ball),
        description=f"worst case over attacks ({_ball}): standard = APGD-CE, APGD-T"
        + (", Square" if _ball == "linf" else ""),
        stochastic=True,
        reference="Croce and Hein 2020",
    )
