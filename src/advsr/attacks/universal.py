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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from advsr.attacks._loop import eval_mode, run_steps
from advsr.attacks.objectives import sr_deviation, sr_reference
from advsr.checks import check_image, check_positive_int
from advsr.errors import InputError, ShapeError
from advsr.io import load_state_dict, save_safetensors
from advsr.types import Budget

__all__ = [
    "UniversalResult",
    "apply_perturbation",
    "center_crop_batch",
    "load_perturbation",
    "save_perturbation",
    "universal_attack",
]


@dataclass(frozen=True)
class UniversalResult:
    """The universal perturbation ``(1, 3, c, c')`` and ``F`` after each step ``(T,)``."""

    delta: torch.Tensor
    losses: torch.Tensor


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


def universal_attack(
    model: nn.Module,
    x0: torch.Tensor,
    *,
    eps: float = 8 / 255,
    steps: int = 50,
    reference: str = "clean-8bit",
    hr: torch.Tensor | None = None,
    batch_size: int = 8,
) -> UniversalResult:
    """Find one L-inf perturbation that degrades the SR output of all K images.

    Args:
        model: SR model (its mode is restored).
        x0: the K images, same size ``(K, 3, h, w)`` (see :func:`center_crop_batch`).
        eps: budget ``alpha``; steps ``T`` of ``alpha / T``.
        steps: iterations.
        reference: ``clean-8bit`` or ``ground-truth`` (``clean`` has a zero gradient at
            ``Delta = 0``, where the universal attack starts, and is refused).
        hr: HR images for ``ground-truth``.
        batch_size: images per forward/backward (memory bound, not K).

    Shape:
        ``(K, 3, h, w)`` -> delta ``(1, 3, h, w)``.
    """
    check_image(x0, "x0", check_range=True)
    if not 0.0 <= eps <= 1.0:
        raise InputError(f"alpha (eps) must be in [0, 1], got {eps}")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if reference == "clean":
        raise InputError("reference 'clean' has a zero gradient at Delta = 0; use clean-8bit")
    k = x0.shape[0]
    with eval_mode(model):
        refs = [
            sr_reference(
                model,
                x0[i : i + batch_size],
                reference,
                None if hr is None else hr[i : i + batch_size],
            )
            for i in range(0, k, batch_size)
        ]

        def grad_fn(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            total = torch.zeros((), device=x0.device, dtype=x0.dtype)
            grad = torch.zeros_like(delta)
            for j, i in enumerate(range(0, k, batch_size)):
                d = delta.detach().requires_grad_(True)
                x = (x0[i : i + batch_size] + d).clamp(0.0, 1.0)
                loss = sr_deviation(model, refs[j])(x).sum() / k
                (g,) = torch.autograd.grad(loss, d)
                grad += g
                total += loss.detach()
            return total.view(1), grad

        zero = torch.zeros((1, *x0.shape[1:]), device=x0.device, dtype=x0.dtype)
        res = run_steps(None, zero, Budget("linf", float(eps), steps), grad_fn=grad_fn, bounds=None)
    return UniversalResult(res.x, res.losses[:, 0] if res.losses.numel() else res.losses)


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
    """Read a perturbation written by :func:`save_perturbation`."""
    sd = load_state_dict(path)
    if "delta" not in sd:
        raise InputError(f"{path} holds no universal perturbation ('delta' tensor)")
    return sd["delta"]
