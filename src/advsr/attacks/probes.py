"""Gradient-masking checks: per-image probes stored with every classifier attack row, and
the flags a summary raises from them (AutoAttack's automatic flags, Croce and Hein 2020;
Athalye et al. 2018's sanity checks).

Per image (:func:`probe_batch`, columns of the cell's rows). The probes cost gradient
passes and attacks of their own (through an SR defense at 448 px, one probed image costs
about as much as three images of the cell's own work), so by default (``probes="sample"``)
they look at a bounded sample whose cost does not grow with the cell: the cell's first
:data:`PROBE_SAMPLE` images; images not probed read NaN. ``probes="full"`` probes every
image (the unbounded attack the first :data:`UNBOUNDED_PROBE`); ``probes="off"`` stores no
probe column, so no flag can fire, and every table says so.

* ``grad_zero`` - 1 when the input gradient of the cross-entropy of the model the attack
  targeted is zero (``max |grad| <= 1e-10``) at the clean image (read from the attack's
  first step, for every image, when that step took exactly this gradient: a cross-entropy
  attack without random start or input transform on the judged model);
* ``loss_rise`` - 1 when the attack's objective rose above its first value at some
  iteration, for the images the attack failed on (NaN for the others, and when the attack
  keeps no trace or takes one step; free: read from the attack's trace, every image);
* ``broken_by`` - the ensemble member that broke the image (-1: none; ensembles only);
* ``random_flip`` - 1 when two identical calls of the evaluated (defended) model disagree
  on the image's logits (randomness; stochastic defenses only);
* ``unbounded_fooled`` - on the cell's first images, whether the same attack with an
  unbounded budget (L-inf 1, L2 1000; PGD-10 in place of a single-step attack) fools the
  model it is judged on; an image the bounded attack fooled already counts as fooled
  without running it (the unbounded budget contains the bounded one), and minimal attacks
  (DeepFool, C&W) are unbounded already, so their own result is used.

Flags of a cell (:func:`cell_flags`), each with its evidence; a flagged value is marked in
every table:

* ``zero-gradients`` - some images have a zero input gradient;
* ``random-without-eot`` - the evaluated model is random and the attack had no EOT (a
  non-adaptive cell, or EOT with one draw);
* ``black-box-beats-white-box`` - a score-based member broke images the gradient members
  could not (ensembles), or a transfer (non-adaptive) attack fooled the defended model on
  images the adaptive one did not (:func:`cross_cell_flags`);
* ``unbounded-not-100`` - an unbounded attack did not fool every probed image;
* ``loss-not-rising`` - on more than 5% of the images the attack failed on, its objective
  never rose;
* ``accuracy-rises-with-eps`` - robust accuracy at a larger budget exceeds that at a smaller
  one by more than one image (:func:`cross_cell_flags`);
* ``adaptive-above-non-adaptive`` - the adaptive attack leaves more images correct than the
  non-adaptive one by more than one image (:func:`cross_cell_flags`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advsr.attacks.base import Attack, AttackResult, create_attack
from advsr.memory import value_and_grad

__all__ = [
    "FLAG_MARK",
    "PROBE_MODES",
    "PROBE_SAMPLE",
    "UNBOUNDED_PROBE",
    "cell_flags",
    "correct_over_draws",
    "cross_cell_flags",
    "members_of",
    "probe_batch",
    "probe_time_share",
    "random_flips",
    "unbounded_attack",
]

UNBOUNDED_PROBE = 8
"""Images per cell (the first ones) that the unbounded attack probes (``probes="full"``)."""
PROBE_SAMPLE = 4
"""Images per cell (the first ones) that the probes look at with ``probes="sample"`` (the
default)."""
PROBE_MODES = ("full", "sample", "off")
"""How much the probes look at (see :func:`probe_batch`)."""
FLAG_MARK = "*"
"""Appended to a flagged value in tables."""
LOSS_SHARE = 0.05


def unbounded_attack(attack: Attack) -> Attack | None:
    """The same attack with an unbounded budget (PGD-10 for single-step attacks; None for
    minimal attacks, unbounded already, and for budgets other than L-inf / L2)."""
    norm = attack.entry.norm
    if norm not in ("linf", "l2"):
        return None
    eps = 1.0 if norm == "linf" else 1000.0
    if "steps" not in type(attack.settings).model_fields:  # one step: probe with PGD-10
        return create_attack("pgd" if norm == "linf" else "pgd-l2", eps=eps, steps=10)
    return create_attack(attack.entry.name, eps=eps, **attack.settings.model_dump())


def _input_grad_zero(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 where the cross-entropy's input gradient is exactly zero (one forward and one
    backward per micro-batch)."""

    def ce(z: torch.Tensor, rows: slice) -> torch.Tensor:
        return F.cross_entropy(z, y[rows], reduction="none")

    _, g = value_and_grad(model, x.detach(), ce)
    return (g.flatten(1).abs().amax(1) <= 1e-10).float()


def probe_batch(
    target: nn.Module,
    evaluated: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    result: AttackResult,
    first: int,
    generator: Callable[[], torch.Generator],
    deployed: nn.Module | None = None,
    deployed_differentiable: bool = True,
    probes: str = "sample",
    fooled: torch.Tensor | None = None,
    memo: Callable[[Callable[[], torch.Tensor]], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The per-image probes of one attacked batch (see the module docstring).

    Args:
        target: the model the attack was run on (bare or defended-adaptive).
        evaluated: the model accuracy is judged on when it may be random (a defended
            classifier); None when it is deterministic.
        x: clean images.
        y: their labels.
        attack: the attack.
        result: its result on ``x``.
        first: the index of the batch's first image in the cell.
        generator: a fresh generator for the unbounded probe.
        deployed: for a non-adaptive cell (the attack never saw the defense), the defended
            model as deployed: the input gradient and the unbounded probe are judged on it,
            so a defense that masks gradients, or that a transferred unbounded attack does
            not break, is flagged (None: judged on ``target``).
        deployed_differentiable: False when the deployed defense declares no useful
            gradient (JPEG, K-means, quilting...): its input gradient counts as zero
            without running autograd through it.
        probes: ``full`` (every image; the unbounded attack on the first
            :data:`UNBOUNDED_PROBE` of the cell), ``sample`` (the first
            :data:`PROBE_SAMPLE` images of the cell) or ``off`` (no probe: no columns, no
            flags).
        fooled: per image, whether ``result.x_adv`` already fools the model the probes
            judge on (``deployed``, else ``target``); such images count as fooled by the
            unbounded attack without running it (its budget contains the bounded one).
            None: computed here.
        memo: caches the deployed model's input-gradient probe, which depends on the
            defense, the model and the clean images but not on the attack, across the
            cells of one run (``memo(compute) -> value``, the caller keys it); None:
            computed here.

    Shape:
        ``(N, 3, H, W)`` -> values ``(N,)`` (NaN where an image was not probed).
    """
    if probes not in PROBE_MODES:
        raise ValueError(f"probes must be one of {', '.join(PROBE_MODES)}, got {probes!r}")
    n = x.shape[0]
    if probes == "off" or n == 0:
        return {}
    judge = target if deployed is None else deployed
    m = n if probes == "full" else max(0, min(n, PROBE_SAMPLE - first))
    zero = torch.full((n,), math.nan)
    seen = result.diagnostics.get("grad_zero")
    if deployed is not None and not deployed_differentiable:
        zero[:m] = 1.0
    elif deployed is None and isinstance(seen, torch.Tensor) and seen.shape == (n,):
        zero = seen.float().cpu()  # the attack's first step took this gradient: every image
    elif m:
        compute = functools.partial(_input_grad_zero, judge, x[:m], y[:m])
        zero[:m] = (compute() if memo is None or deployed is None else memo(compute)).cpu()
    out: dict[str, torch.Tensor] = {"grad_zero": zero}
    out["loss_rise"] = _loss_rise(target, x, y, result)
    broken = result.diagnostics.get("broken_by")
    if isinstance(broken, torch.Tensor):
        out["broken_by"] = broken.float().cpu()
    if evaluated is not None:
        flips = torch.full((n,), math.nan)
        if m:
            flips[:m] = random_flips(evaluated, result.x_adv[:m])
        out["random_flip"] = flips
    out["unbounded_fooled"] = _unbounded(
        target, deployed, x, y, attack, result, first, generator, probes, fooled
    )
    return out


def _loss_rise(
    target: nn.Module, x: torch.Tensor, y: torch.Tensor, result: AttackResult
) -> torch.Tensor:
    """1 where the attack's objective rose above its first value, on the images it worked
    on and failed (NaN elsewhere, and when it keeps no trace)."""
    n = x.shape[0]
    losses = result.diagnostics.get("losses")
    if not (
        isinstance(losses, torch.Tensor)
        and losses.ndim == 2
        and losses.shape[1] == n > 0
        and len(losses) > 1
    ):
        return torch.full((n,), math.nan)
    # only images the attack worked on and did not break say anything: the clean pass is
    # needed on the images it did not break only
    right = ~result.success.cpu()
    todo = right.nonzero().flatten()
    if len(todo):
        with torch.no_grad():
            idx = todo.to(x.device)
            right[todo] = (target(x[idx]).argmax(1) == y[idx]).cpu()
    valid = ~torch.isnan(losses)
    best = torch.where(valid, losses, torch.full_like(losses, -math.inf)).amax(0)
    rise = (best > losses[0]).float().cpu()
    return torch.where(right, rise, torch.full_like(rise, math.nan))


def _unbounded(
    target: nn.Module,
    deployed: nn.Module | None,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    result: AttackResult,
    first: int,
    generator: Callable[[], torch.Generator],
    probes: str,
    fooled: torch.Tensor | None,
) -> torch.Tensor:
    """Whether an unbounded attack fools the judged model, on the cell's first images."""
    n = x.shape[0]
    probe = torch.full((n,), math.nan)
    k = max(0, min(n, (UNBOUNDED_PROBE if probes == "full" else PROBE_SAMPLE) - first))
    if not k:
        return probe
    if fooled is None:
        if deployed is None:
            fooled = result.success
        else:
            with torch.no_grad():
                fooled = deployed(result.x_adv[:k]).argmax(1) != y[:k]
    done = fooled[:k].bool().cpu()
    probe[:k] = done.float()
    rest = (~done).nonzero().flatten()
    if not len(rest):
        return probe
    unbounded = unbounded_attack(attack)
    if unbounded is None:  # minimal attacks are unbounded already: their own result
        return probe
    idx = rest.to(x.device)
    res = unbounded(target, x[idx], y[idx], generator=generator())
    again = res.success
    if deployed is not None:
        with torch.no_grad():
            again = deployed(res.x_adv).argmax(1) != y[idx]
    probe[rest] = again.float().cpu()
    return probe


def probe_time_share(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The probes' share of a cell's time (rows' ``probe_seconds`` over their ``seconds``;
    None when the rows hold no timing)."""
    total = sum(float(r.get("seconds") or 0.0) for r in rows)
    probe = [float(r["probe_seconds"]) for r in rows if r.get("probe_seconds") is not None]
    if not probe or total <= 0:
        return None
    return sum(probe) / total


def random_flips(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """1 where two identical calls of ``model`` give different logits.

    Shape:
        ``(N, 3, H, W)`` -> ``(N,)``.
    """
    with torch.no_grad():
        a, b = model(x), model(x)
    return ((a - b).abs().flatten(1).amax(1) > 1e-6).float().cpu()


def correct_over_draws(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int
) -> torch.Tensor:
    """1 where a random model is right on every one of ``draws`` fresh calls.

    Shape:
        ``(N, 3, H, W)`` -> ``(N,)``.
    """
    ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    with torch.no_grad():
        for _ in range(draws):
            ok &= model(x).argmax(1) == y
    return ok.float().cpu()


def members_of(attack: Mapping[str, Any]) -> list[str]:
    """The member specs of an ensemble attack's identity (empty for other attacks)."""
    from advsr.attacks.base import ATTACKS
    from advsr.attacks.ensemble import EnsembleSettings, ensemble_members

    name = attack.get("name")
    if not name or name not in ATTACKS or ATTACKS.get(name).kind != "ensemble":
        return []
    settings = EnsembleSettings(**(attack.get("settings") or {}))
    return ensemble_members(ATTACKS.get(name).norm, settings)


def _share(rows: Sequence[Mapping[str, Any]], key: str, value: float) -> tuple[int, int]:
    vals = [r[key] for r in rows if isinstance(r.get(key), float) and not math.isnan(r[key])]
    return sum(v == value for v in vals), len(vals)


def cell_flags(
    rows: Sequence[Mapping[str, Any]],
    *,
    members: Sequence[str] = (),
    stochastic_eval: bool = False,
    eot: int | None = None,
    adaptive: bool = False,
) -> list[dict[str, str]]:
    """The flags one cell raises from its rows (see the module docstring).

    Args:
        rows: the cell's rows (with the probe columns).
        members: the ensemble's member specs (empty: not an ensemble).
        stochastic_eval: the evaluated model is random (a stochastic defense).
        eot: the EOT draws the attack used (None: none).
        adaptive: the attack targeted the defended model.
    """
    flags = []
    zero, n = _share(rows, "grad_zero", 1.0)
    if zero:
        flags.append(
            {
                "flag": "zero-gradients",
                "evidence": f"{zero} of {n} images have a zero (or no) input gradient",
            }
        )
    flips, m = _share(rows, "random_flip", 1.0)
    if stochastic_eval and flips and (not adaptive or not eot or eot <= 1):
        flags.append(
            {
                "flag": "random-without-eot",
                "evidence": f"two identical calls disagree on {flips} of {m} images and the "
                "attack used no EOT",
            }
        )
    missed, probed = _share(rows, "unbounded_fooled", 0.0)
    if missed:
        flags.append(
            {
                "flag": "unbounded-not-100",
                "evidence": f"an unbounded attack left {missed} of {probed} probed images correct",
            }
        )
    flat, traced = _share(rows, "loss_rise", 0.0)
    if traced and flat > LOSS_SHARE * traced:
        flags.append(
            {
                "flag": "loss-not-rising",
                "evidence": f"the objective never rose on {flat} of the {traced} images the "
                "attack failed on",
            }
        )
    if members:
        from advsr.attacks.base import ATTACKS

        kinds = [ATTACKS.get(m.partition(":")[0]).kind for m in members]
        for i, kind in enumerate(kinds):
            if kind != "score" or all(k == "score" for k in kinds[:i]):
                continue
            hit, _ = _share(rows, "broken_by", float(i))
            if hit:
                flags.append(
                    {
                        "flag": "black-box-beats-white-box",
                        "evidence": f"{members[i]} broke {hit} images the gradient members "
                        "before it did not",
                    }
                )
    return flags


def cross_cell_flags(
    cells: Sequence[Mapping[str, Any]],
) -> dict[str, list[dict[str, str]]]:
    """Flags that compare cells: each cell is ``{"id", "group", "eps", "mode", "label",
    "rows"}`` (``group``: cells that differ only in the budget; rows keyed by ``key`` with a
    0/1 ``correct`` value). Returns cell id -> flags.
    """
    out: dict[str, list[dict[str, str]]] = {}
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for c in cells:
        if c.get("eps") is not None:
            groups.setdefault(c["group"], []).append(c)
    for members in groups.values():
        members = sorted(members, key=lambda c: c["eps"])
        for lo, hi in itertools.pairwise(members):
            a_lo, a_hi = _accuracy(lo["rows"]), _accuracy(hi["rows"])
            n = max(len(lo["rows"]), 1)
            if a_hi - a_lo > 1.0 / n + 1e-12:
                out.setdefault(hi["id"], []).append(
                    {
                        "flag": "accuracy-rises-with-eps",
                        "evidence": f"{100 * a_hi:.1f}% at {hi['label']} vs {100 * a_lo:.1f}% at "
                        f"{lo['label']}",
                    }
                )
    by_label: dict[Any, dict[str, Mapping[str, Any]]] = {}
    for c in cells:
        by_label.setdefault(c["pair"], {})[c["mode"]] = c
    for pair in by_label.values():
        if "adaptive" not in pair or "non-adaptive" not in pair:
            continue
        ad, na = pair["adaptive"], pair["non-adaptive"]
        n = max(len(ad["rows"]), 1)
        a_ad, a_na = _accuracy(ad["rows"]), _accuracy(na["rows"])
        if a_ad - a_na > 1.0 / n + 1e-12:
            out.setdefault(ad["id"], []).append(
                {
                    "flag": "adaptive-above-non-adaptive",
                    "evidence": f"{100 * a_ad:.1f}% adaptive vs {100 * a_na:.1f}% non-adaptive",
                }
            )
        right = {r["key"] for r in ad["rows"] if r["correct"] == 1.0}
        transfer = {r["key"] for r in na["rows"] if r["correct"] == 0.0}
        beaten = right & transfer
        if beaten:
            out.setdefault(ad["id"], []).append(
                {
                    "flag": "black-box-beats-white-box",
                    "evidence": f"the transfer attack fooled {len(beaten)} images the adaptive "
                    "one did not",
                }
            )
    return out


def _accuracy(rows: Sequence[Mapping[str, Any]]) -> float:
    return sum(r["correct"] for r in rows) / max(len(rows), 1)
