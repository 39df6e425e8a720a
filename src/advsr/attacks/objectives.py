"""Per-sample objectives that attacks maximise (``(N, C, H, W) -> (N,)``).

SR objectives follow Choi et al. (2019): the deviation of the SR output from a reference,
``||(f(X) - R) o (1 - M_H)||_2`` per image. Which reference ``R`` (see :func:`sr_reference`):

* ``clean`` - ``f(X0)`` in float, the paper's formula. Its gradient is exactly zero at
  ``X = X0`` (the norm is at its minimum), so sign steps from ``X0`` never move: it needs a
  random start, and the attacks refuse it without one.
* ``clean-8bit`` - ``f(X0)`` rounded to 8 bits, what the reference code (tf-sr-attack) got
  by saving the clean output as PNG: the gradient at ``X0`` comes only from the rounding
  residue, but it is non-zero almost everywhere, so the attack moves from the first step.
* ``ground-truth`` - the HR image (the reference code's "truth" when the dataset has it).

Measured with the official CARN-M x4 on Set5, alpha = 8/255, T = 50 (``advsr attack-sr
--model carn-m --weights carn_m.pth --data Set5 --scale 4 --reference R``), mean LR / SR PSNR
(RGB, f(X) vs f(X0) in every case): ``clean`` + random start 31.92 / 23.20 dB,
``clean-8bit`` 34.09 / 21.04 dB, ``ground-truth`` 34.29 / 21.06 dB. ``clean-8bit`` is the
default: it is the reference code's procedure (attack away from the stored 8-bit clean
output), needs no random start, and is as strong as ``ground-truth`` without needing HR
images. The paper's CARN-M figure (26.66 dB SR PSNR at 8/255) is on BSD100, which is not
available here, so which reference reproduces the published numbers best could not be
settled numerically; all three are stronger than that figure on Set5.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from advsr.attacks._loop import ModelObjective, Objective
from advsr.errors import InputError, ShapeError
from advsr.imaging.quantize import quantize

__all__ = [
    "REFERENCES",
    "Reference",
    "cross_entropy",
    "cw_margin",
    "margin_of",
    "sr_deviation",
    "sr_reference",
    "sr_to_target",
]

Reference = Literal["clean", "clean-8bit", "ground-truth"]
REFERENCES: tuple[str, ...] = ("clean", "clean-8bit", "ground-truth")


def sr_reference(
    model: nn.Module, x0: torch.Tensor, kind: str, hr: torch.Tensor | None = None
) -> torch.Tensor:
    """The reference output an SR attack moves away from (no gradient).

    Raises:
        InputError: unknown kind, or ``ground-truth`` without an HR image.

    Shape:
        ``(N, 3, h, w)`` -> ``(N, 3, s*h, s*w)``.
    """
    if kind not in REFERENCES:
        raise InputError(f"unknown reference {kind!r}; use one of {', '.join(REFERENCES)}")
    if kind == "ground-truth":
        if hr is None:
            raise InputError("reference 'ground-truth' needs HR images (this data has none)")
        return hr.detach()
    with torch.no_grad():
        out = model(x0)
    return quantize(out) if kind == "clean-8bit" else out.detach()


def sr_deviation(
    model: nn.Module, reference: torch.Tensor, mask_hr: torch.Tensor | None = None
) -> Objective:
    """``||(f(X) - reference) o (1 - M_H)||_2`` per image (to maximise).

    Args:
        model: SR model.
        reference: fixed reference output (see :func:`sr_reference`).
        mask_hr: HR mask ``M_H`` (1 = attacked region, excluded from the objective).

    Shape:
        objective: ``(N, 3, h, w)`` -> ``(N,)``.
    """
    keep = None if mask_hr is None else (1.0 - mask_hr)

    def objective(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        if out.shape != reference.shape:
            raise ShapeError(
                f"SR output {tuple(out.shape)} does not match the reference "
                f"{tuple(reference.shape)}"
            )
        diff = out - reference
        if keep is not None:
            diff = diff * keep
        return diff.flatten(1).norm(dim=1)

    return objective


def sr_to_target(model: nn.Module, target: torch.Tensor) -> Objective:
    """Targeted variant: ``-||f(X) - target||_2`` per image (maximised = pulled to target).

    Shape:
        objective: ``(N, 3, h, w)`` -> ``(N,)``.
    """

    def objective(x: torch.Tensor) -> torch.Tensor:
        return -(model(x) - target).flatten(1).norm(dim=1)

    return objective


def _check_labels(y: torch.Tensor, logits: torch.Tensor) -> None:
    if y.ndim != 1 or y.shape[0] != logits.shape[0]:
        raise ShapeError(f"labels must have shape ({logits.shape[0]},), got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise InputError(f"labels must lie in [0, {logits.shape[1] - 1}]")


def cross_entropy(model: nn.Module, y: torch.Tensor, *, targeted: bool = False) -> Objective:
    """Cross-entropy of the true class (untargeted, maximised) or minus that of the target.

    Shape:
        objective: ``(N, 3, H, W)`` -> ``(N,)``.
    """

    def of_logits(logits: torch.Tensor, rows: slice) -> torch.Tensor:
        yr = y[rows]
        _check_labels(yr, logits)
        ce = torch.nn.functional.cross_entropy(logits, yr.to(logits.device), reduction="none")
        return -ce if targeted else ce

    return ModelObjective(model, of_logits)


def cw_margin(
    model: nn.Module, y: torch.Tensor, *, kappa: float = 0.0, targeted: bool = False
) -> Objective:
    """Carlini-Wagner margin on logits, capped at ``kappa`` (maximised).

    Untargeted: ``min(max_{j != y} Z_j - Z_y, kappa)``; targeted (``y`` = target):
    ``min(Z_t - max_{j != t} Z_j, kappa)``.

    Shape:
        objective: ``(N, 3, H, W)`` -> ``(N,)``.
    """

    def of_logits(z: torch.Tensor, rows: slice) -> torch.Tensor:
        yr = y[rows]
        _check_labels(yr, z)
        return margin_of(z, yr.to(z.device), kappa=kappa, targeted=targeted)

    return ModelObjective(model, of_logits)


def margin_of(
    z: torch.Tensor, y: torch.Tensor, *, kappa: float = 0.0, targeted: bool = False
) -> torch.Tensor:
    """The C&W margin of logits ``z`` (see :func:`cw_margin`).

    Shape:
        ``(N, K)``, ``(N,)`` -> ``(N,)``.
    """
    true = z.gather(1, y[:, None])[:, 0]
    other = z.masked_fill(torch.nn.functional.one_hot(y, z.shape[1]).bool(), float("-inf"))
    best_other = other.max(dim=1).values
    margin = (true - best_other) if targeted else (best_other - true)
    return margin.clamp(max=kappa)
