"""Universal (image-agnostic) attack on SR models (Choi et al. 2019).

One perturbation ``Delta`` for K images: ``Delta_0 = 0``,
``Delta_{n+1} = clip_[-a,a](Delta_n + (a/T) sgn(grad F(Delta_n)))`` with
``F(Delta) = (1/K) sum_k L(clip_[0,1](X0_k + Delta), X0_k)``. Images of different sizes are
centre-cropped to a common size first (the reference code used 80x80 crops); the gradient of
``F`` is accumulated over mini-batches, so K is not limited by memory. ``Delta`` can be saved
(safetensors) and applied to new images (tiled to their size).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from advsr.attacks._loop import input_grad, run_steps
from advsr.attacks.apgd import apgd_steps
from advsr.attacks.base import (
    AttackResult,
    AttackSettings,
    Raw,
    create_attack,
    floor_eps,
    register_attack,
)
from advsr.attacks.classifier import at_most
from advsr.attacks.objectives import sr_deviation, sr_reference
from advsr.checks import check_image
from advsr.errors import InputError, ShapeError
from advsr.io import load_state_dict, save_safetensors
from advsr.settings import NEUTRAL
from advsr.types import Budget

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_STEPS",
    "UniversalSettings",
    "apply_perturbation",
    "center_crop_batch",
    "load_perturbation",
    "save_perturbation",
    "universal_attack",
]


MAX_STEPS = 100_000
"""The most steps T of the universal attack (the paper uses 50)."""
MAX_BATCH_SIZE = 4096
"""The most images per forward/backward pass."""


class UniversalSettings(AttackSettings):
    """The universal attack: ``steps`` T of ``eps / T``; the reference is ``clean-8bit`` or
    ``ground-truth`` (``clean`` has a zero gradient at ``Delta = 0``, where it starts);
    ``batch_size`` images per forward/backward (memory only: it does not change Delta)."""

    steps: Annotated[int, at_most(MAX_STEPS)] = Field(50, ge=1, le=MAX_STEPS)
    reference: Literal["clean-8bit", "ground-truth"] = "clean-8bit"
    batch_size: Annotated[int, NEUTRAL, at_most(MAX_BATCH_SIZE)] = Field(8, ge=1, le=MAX_BATCH_SIZE)
    schedule: Literal["ifgsm", "apgd"] = "ifgsm"
    """ifgsm: T steps of eps/T; apgd: APGD's step-size-free schedule on Delta."""

    identity_defaults: ClassVar[dict[str, Any]] = {"schedule": "ifgsm"}


def center_crop_batch(images: Sequence[torch.Tensor], size: tuple[int, int] | None) -> torch.Tensor:
    """Centre-crop images to ``size`` (default: the smallest height and width) and stack.

    Raises:
        ShapeError: an image smaller than ``size``.

    Shape:
        list of ``(n_i, 3, H_i, W_i)`` -> ``(sum n_i, 3, h, w)``.
    """
    if not images:
        raise InputError("no images to attack")
    h = size[0] if size else min(int(im.shape[-2]) for im in images)
    w = size[1] if size else min(int(im.shape[-1]) for im in images)
    out = []
    for im in images:
        ih, iw = im.shape[-2:]
        if ih < h or iw < w:
            raise ShapeError(f"an image of {ih}x{iw} is smaller than the crop {h}x{w}")
        top, left = (ih - h) // 2, (iw - w) // 2
        out.append(im[..., top : top + h, left : left + w])
    return torch.cat(out)


def _chunks(k: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, k)) for i in range(0, k, size)]


def _universal_core(
    model: nn.Module,
    x0: torch.Tensor,
    hr: torch.Tensor | None,
    eps: float | None,
    s: UniversalSettings,
    generator: torch.Generator | None,
) -> Raw:
    """One L-inf perturbation for all K images of ``x0`` (same size), see the module docstring."""
    assert eps is not None
    k = x0.shape[0]
    parts = _chunks(k, s.batch_size)
    refs = [sr_reference(model, x0[p], s.reference, None if hr is None else hr[p]) for p in parts]

    def grad_fn(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros((), device=x0.device, dtype=x0.dtype)
        grad = torch.zeros_like(delta)
        for p, ref in zip(parts, refs, strict=True):
            d = delta.detach().requires_grad_(True)
            x = (x0[p] + d).clamp(0.0, 1.0)
            loss = sr_deviation(model, ref)(x).sum() / k
            g = input_grad(loss, d)
            grad += g
            total += loss.detach()
        return total.view(1), grad

    zero = torch.zeros((1, *x0.shape[1:]), device=x0.device, dtype=x0.dtype)
    budget = Budget("linf", float(eps), s.steps)
    if s.schedule == "apgd":
        res = apgd_steps(None, zero, budget, grad_fn=grad_fn, bounds=None)
    else:
        res = run_steps(None, zero, budget, grad_fn=grad_fn, bounds=None)
    e = floor_eps(float(eps), res.x.dtype).to(res.x.device)
    delta = res.x.clamp(-e, e)  # |Delta| <= eps exactly in its own dtype

    def objective(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([sr_deviation(model, r)(x[p]) for p, r in zip(parts, refs, strict=True)])

    losses = res.losses[:, 0] if res.losses.numel() else res.losses
    return Raw(
        (x0 + delta).clamp(0.0, 1.0),
        outputs={"delta": delta},
        diagnostics={"losses": losses},
        objective=objective,
    )


register_attack(
    "universal",
    kind="sr",
    domain="sr",
    norm="linf",
    settings=UniversalSettings,
    core=_universal_core,
    description="SR universal attack: one Delta for every image of the batch",
    reference="Choi et al. 2019",
)


def universal_attack(
    model: nn.Module,
    x0: torch.Tensor,
    *,
    eps: float = 8 / 255,
    hr: torch.Tensor | None = None,
    **settings: Any,
) -> AttackResult:
    """Find one L-inf perturbation that degrades the SR output of all K images.

    Args:
        model: SR model (its mode is restored).
        x0: the K images, same size ``(K, 3, h, w)`` (see :func:`center_crop_batch`).
        eps: budget ``alpha``; steps ``T`` of ``alpha / T``.
        hr: HR images for ``ground-truth``.
        settings: :class:`UniversalSettings`.

    Returns:
        the attacked images ``clip(x0 + Delta)`` and ``outputs["delta"]`` ``(1, 3, h, w)``;
        ``diagnostics["losses"]`` is ``F`` after each step ``(T,)``.

    Shape:
        ``(K, 3, h, w)`` -> :class:`AttackResult`.
    """
    return create_attack("universal", eps=eps, **settings)(model, x0, hr)


def apply_perturbation(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``clip_[0,1](x + Delta)``, with ``Delta`` tiled (periodically) to ``x``'s size.

    Shape:
        ``(1, 3, h, w)`` and ``(N, 3, H, W)`` -> ``(N, 3, H, W)``.
    """
    check_image(x, "x")
    if delta.ndim != 4 or delta.shape[:2] != (1, 3):
        raise ShapeError(f"a perturbation must be (1, 3, h, w), got {tuple(delta.shape)}")
    h, w = x.shape[-2:]
    dh, dw = delta.shape[-2:]
    reps = (1, 1, -(-h // dh), -(-w // dw))
    tiled = delta.to(x.device, x.dtype).repeat(*reps)[..., :h, :w]
    return (x + tiled).clamp(0.0, 1.0)


def save_perturbation(path: str | Path, delta: torch.Tensor, info: dict[str, object]) -> None:
    """Write ``Delta`` as safetensors with its settings (model, scale, alpha...) as metadata."""
    save_safetensors(path, {"delta": delta}, {"advsr_universal": json.dumps(info, sort_keys=True)})


def load_perturbation(path: str | Path) -> torch.Tensor:
    """Read a perturbation written by :func:`save_perturbation`.

    Raises:
        InputError: no ``delta`` tensor, a tensor that is not floating point, or one with
            NaN or infinite values (it would poison every image it is applied to).
    """
    sd = load_state_dict(path)
    if "delta" not in sd:
        raise InputError(f"{path} holds no universal perturbation ('delta' tensor)")
    delta = sd["delta"]
    if not delta.is_floating_point():
        dtype = str(delta.dtype).removeprefix("torch.")
        raise InputError(f"{path}: the perturbation must be floating point, got {dtype}")
    bad = int((~torch.isfinite(delta)).sum())
    if bad:
        raise InputError(
            f"{path}: the perturbation holds {bad} NaN or infinite values of {delta.numel()}"
        )
    return delta
