"""Attacks on SR models (Choi et al. 2019): basic (I-FGSM) and partial (masked) attacks.

Basic attack: ``X~_{n+1} = clip_[0,1](X_n + (alpha/T) sgn(grad L))``, then
``X_{n+1} = clip_[-alpha,alpha](X~_{n+1} - X0) + X0``, ``T = 50`` by default; ``alpha`` is the
total L-inf budget and ``alpha/T`` the step, exactly as in the paper and its reference code.
Partial attack: the same steps multiplied by a binary LR mask ``M`` (perturbation exactly
zero outside), maximising the deviation *outside* the HR mask ``M_H`` (nearest upsampling of
``M``), to measure how a local perturbation leaks into the rest of the SR output.

Example:
    >>> import torch
    >>> from advsr.models.sr import create_sr_model
    >>> model = create_sr_model("bicubic", 2)
    >>> x0 = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> res = basic_attack(model, x0, eps=4 / 255, steps=5)
    >>> bool((res.x_adv - x0).abs().max() <= 4 / 255 + 1e-6)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advsr.attacks._loop import eval_mode, random_start, run_steps
from advsr.attacks.objectives import sr_deviation, sr_reference
from advsr.checks import check_image, check_positive_int
from advsr.errors import InputError, ShapeError
from advsr.types import Budget

__all__ = ["SRAttackResult", "basic_attack", "masked_psnr", "partial_attack", "sr_attack_metrics"]

DEFAULT_REFERENCE = "clean-8bit"


@dataclass(frozen=True)
class SRAttackResult:
    """Adversarial LR inputs, the clean and attacked SR outputs, and the objective trace.

    Attributes:
        x_adv: attacked LR images ``(N, 3, h, w)``.
        sr_clean: ``f(X0)`` ``(N, 3, sh, sw)`` (float, as the model returns it).
        sr_adv: ``f(X_adv)``.
        losses: objective per step and image ``(T, N)``.
        mask_hr: the HR mask of a partial attack, else None ``(N|1, 1, sh, sw)``.
    """

    x_adv: torch.Tensor
    sr_clean: torch.Tensor
    sr_adv: torch.Tensor
    losses: torch.Tensor
    mask_hr: torch.Tensor | None = None


def _check_budget(eps: float, steps: int) -> None:
    if not 0.0 <= float(eps) <= 1.0:
        raise InputError(f"alpha (eps) must be in [0, 1] on the [0, 1] image scale, got {eps}")
    check_positive_int(steps, "steps")


def basic_attack(
    model: nn.Module,
    x0: torch.Tensor,
    *,
    eps: float = 8 / 255,
    steps: int = 50,
    reference: str = DEFAULT_REFERENCE,
    hr: torch.Tensor | None = None,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    momentum: float = 0.0,
) -> SRAttackResult:
    """Image-specific I-FGSM attack on an SR model (optionally masked: the partial attack).

    Args:
        model: SR model ``(N,3,h,w) -> (N,3,sh,sw)``; its train/eval mode is restored.
        x0: clean LR images in ``[0, 1]`` (not modified).
        eps: total L-inf budget ``alpha``.
        steps: iterations ``T``; each step is ``alpha / T``.
        reference: ``clean``, ``clean-8bit`` or ``ground-truth`` (see
            :mod:`advsr.attacks.objectives`).
        hr: HR images, needed by ``ground-truth``.
        random_start: start from a uniform point of the budget box (required by ``clean``).
        generator: source of the random start.
        mask: binary LR mask ``(N|1, 1, h, w)``; 1 = may be perturbed.
        momentum: MI-FGSM momentum (0 = the paper's attack).

    Raises:
        InputError: budget out of range, ``clean`` without a random start, bad reference.
        ShapeError: inputs or mask of the wrong shape.

    Shape:
        ``(N, 3, h, w)`` -> result tensors as in :class:`SRAttackResult`.
    """
    check_image(x0, "x0", check_range=True)
    _check_budget(eps, steps)
    if reference == "clean" and not random_start:
        raise InputError(
            "reference 'clean' has an exactly zero gradient at the clean input, so the attack "
            "would never move: pass random_start=True (--random-start) or use 'clean-8bit'"
        )
    budget = Budget("linf", float(eps), steps)
    with eval_mode(model):
        with torch.no_grad():
            sr_clean = model(x0)
        scale = sr_clean.shape[-1] // x0.shape[-1]
        mask_hr = None
        if mask is not None:
            if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != x0.shape[-2:]:
                raise ShapeError(
                    f"mask must be (N|1, 1, {x0.shape[-2]}, {x0.shape[-1]}) like the LR image, "
                    f"got {tuple(mask.shape)}"
                )
            mask = (mask > 0.5).to(x0.dtype)
            mask_hr = F.interpolate(mask, scale_factor=scale, mode="nearest")
        ref = sr_reference(model, x0, reference, hr)
        start = random_start_point(x0, budget, generator, mask) if random_start else None
        res = run_steps(
            sr_deviation(model, ref, mask_hr), x0, budget, start=start, mask=mask, momentum=momentum
        )
        with torch.no_grad():
            sr_adv = model(res.x)
    return SRAttackResult(res.x, sr_clean, sr_adv, res.losses, mask_hr)


def random_start_point(
    x0: torch.Tensor, budget: Budget, generator: torch.Generator | None, mask: torch.Tensor | None
) -> torch.Tensor:
    """A random start inside the budget (and inside the mask)."""
    x = random_start(x0, budget, generator)
    return x if mask is None else x0 + (x - x0) * mask


def partial_attack(
    model: nn.Module, x0: torch.Tensor, mask: torch.Tensor, **kwargs: object
) -> SRAttackResult:
    """The partial attack: :func:`basic_attack` with a mask (see the module docstring)."""
    return basic_attack(model, x0, mask=mask, **kwargs)  # type: ignore[arg-type]


def masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR (peak 255, float64) over the pixels where ``mask`` is 1, per image.

    Shape:
        ``(N, C, H, W)`` x2 and mask ``(N|1, 1, H, W)`` -> ``(N,)``.
    """
    m = torch.broadcast_to(mask.to(torch.float64), (a.shape[0], 1, *a.shape[-2:]))
    se = ((a.double() - b.double()) * 255.0) ** 2 * m
    count = (m.flatten(1).sum(1) * a.shape[1]).clamp_min(1.0)
    return 10.0 * torch.log10(255.0**2 / (se.flatten(1).sum(1) / count))


def sr_attack_metrics(
    x0: torch.Tensor,
    res: SRAttackResult,
    *,
    hr: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image measurements of an SR attack (all PSNR in dB, whole images, no border crop).

    ``lr_psnr`` (X vs X0), ``sr_psnr`` (f(X) vs f(X0)), each in RGB (the paper's tables) and
    on Y (``*_y``); with ``hr``: ``sr_hr_psnr`` / ``sr_hr_psnr_y`` (f(X) vs HR, border =
    scale) and the clean ``sr_hr_psnr_clean``; with a partial attack: ``sr_psnr_inside`` and
    ``sr_psnr_outside`` (f(X) vs f(X0) inside and outside ``M_H``: the leakage).

    Shape:
        values ``(N,)`` float64.
    """
    from advsr.metrics import psnr

    def y_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return psnr(a, b, y_channel=True)

    out = {
        "lr_psnr": psnr(res.x_adv, x0),
        "lr_psnr_y": y_psnr(res.x_adv, x0),
        "sr_psnr": psnr(res.sr_adv, res.sr_clean),
        "sr_psnr_y": y_psnr(res.sr_adv, res.sr_clean),
    }
    if hr is not None:
        s = res.sr_clean.shape[-1] // x0.shape[-1]
        out["sr_hr_psnr"] = psnr(res.sr_adv, hr, crop_border=s)
        out["sr_hr_psnr_y"] = psnr(res.sr_adv, hr, crop_border=s, y_channel=True)
        out["sr_hr_psnr_clean"] = psnr(res.sr_clean, hr, crop_border=s)
    if res.mask_hr is not None:
        out["sr_psnr_inside"] = masked_psnr(res.sr_adv, res.sr_clean, res.mask_hr)
        out["sr_psnr_outside"] = masked_psnr(res.sr_adv, res.sr_clean, 1.0 - res.mask_hr)
    return out
