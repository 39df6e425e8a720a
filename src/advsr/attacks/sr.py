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

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from advsr.attacks._loop import random_start, run_steps
from advsr.attacks.apgd import apgd_steps
from advsr.attacks.base import AttackResult, AttackSettings, Raw, create_attack, register_attack
from advsr.attacks.classifier import at_most
from advsr.attacks.objectives import sr_deviation, sr_reference
from advsr.errors import InputError, ShapeError
from advsr.settings import FILE
from advsr.types import Budget

__all__ = [
    "DEFAULT_REFERENCE",
    "MAX_STEPS",
    "PartialSettings",
    "SRSettings",
    "basic_attack",
    "make_mask",
    "masked_psnr",
    "partial_attack",
    "sr_attack_metrics",
    "sr_metrics",
]

MAX_STEPS = 100_000
"""The most steps T of an SR attack (the paper uses 50)."""

Reference = Literal["clean", "clean-8bit", "ground-truth"]
DEFAULT_REFERENCE: Reference = "clean-8bit"


class SRSettings(AttackSettings):
    """The basic attack: ``steps`` T (each step ``eps / T``), the reference point the SR
    output is pushed away from (:mod:`advsr.attacks.objectives`), an optional random start
    (required by ``clean``) and MI-FGSM momentum (0: the paper's attack)."""

    steps: Annotated[int, at_most(MAX_STEPS)] = Field(50, ge=1, le=MAX_STEPS)
    reference: Reference = DEFAULT_REFERENCE
    random_start: bool = False
    momentum: float = Field(0.0, ge=0.0)
    schedule: Literal["ifgsm", "apgd"] = "ifgsm"
    """ifgsm: the paper's T steps of eps/T; apgd: APGD's step-size-free schedule (Croce and
    Hein 2020) on the same objective and T, from X0 (or the random start)."""

    identity_defaults: ClassVar[dict[str, Any]] = {"schedule": "ifgsm"}

    @model_validator(mode="after")
    def _clean_needs_random_start(self) -> SRSettings:
        _check_reference(self.reference, self.random_start)
        return self


class PartialSettings(SRSettings):
    """The partial attack: ``mask`` is ``center:F`` (a centred rectangle covering the fraction
    F of each side), ``rect:TOP,LEFT,HEIGHT,WIDTH`` (LR pixels) or a mask image of the LR
    size (white = may be perturbed)."""

    mask: Annotated[str, FILE] = "center:0.5"


def make_mask(spec: str, height: int, width: int) -> torch.Tensor:
    """A binary LR mask ``(1, 1, H, W)`` from ``center:F``, ``rect:T,L,H,W`` or a file.

    Raises:
        InputError: malformed spec or a rectangle outside the image.
        ShapeError: a mask file whose size differs from the LR image.

    Example:
        >>> make_mask("rect:1,2,2,3", 4, 6)[0, 0].int().tolist()
        [[0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    """
    from advsr.io import read_image

    m = torch.zeros(1, 1, height, width)
    if spec.startswith("center:"):
        try:
            f = float(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"mask {spec!r}: expected center:FRACTION, e.g. center:0.5") from None
        if not 0 < f <= 1:
            raise InputError(f"mask fraction must be in (0, 1], got {f}")
        mh, mw = max(1, round(height * f)), max(1, round(width * f))
        top, left = (height - mh) // 2, (width - mw) // 2
        m[..., top : top + mh, left : left + mw] = 1
        return m
    if spec.startswith("rect:"):
        try:
            top, left, mh, mw = (int(v) for v in spec.split(":", 1)[1].split(","))
        except ValueError:
            raise InputError(f"mask {spec!r}: expected rect:TOP,LEFT,HEIGHT,WIDTH") from None
        if min(top, left) < 0 or mh < 1 or mw < 1 or top + mh > height or left + mw > width:
            raise InputError(f"mask {spec!r} does not fit an LR image of {height}x{width}")
        m[..., top : top + mh, left : left + mw] = 1
        return m
    img = read_image(Path(spec))
    if img.shape[-2:] != (height, width):
        raise ShapeError(
            f"mask {spec} is {img.shape[-2]}x{img.shape[-1]} but the LR image is {height}x{width}"
        )
    return (img.mean(dim=1, keepdim=True) > 0.5).float()


def _check_reference(reference: str, random_start: bool) -> None:
    if reference == "clean" and not random_start:
        raise InputError(
            "reference 'clean' has an exactly zero gradient at the clean input, so the attack "
            "would never move: pass random_start=True (--random-start) or use 'clean-8bit'"
        )


def _basic_core(
    model: nn.Module,
    x0: torch.Tensor,
    hr: torch.Tensor | None,
    eps: float | None,
    s: Any,
    generator: torch.Generator | None,
) -> Raw:
    """Image-specific I-FGSM on an SR model, masked when the settings have a mask."""
    assert eps is not None
    _check_reference(s.reference, s.random_start)
    budget = Budget("linf", float(eps), s.steps)
    with torch.no_grad():
        sr_clean = model(x0)
    scale = sr_clean.shape[-1] // x0.shape[-1]
    mask = mask_hr = None
    if getattr(s, "mask", None):
        mask = make_mask(s.mask, x0.shape[-2], x0.shape[-1]).to(x0.device, x0.dtype)
        mask_hr = F.interpolate(mask, scale_factor=scale, mode="nearest")
    ref = sr_reference(model, x0, s.reference, hr)
    start = None
    if s.random_start:
        start = random_start(x0, budget, generator)
        start = start if mask is None else x0 + (start - x0) * mask
    objective = sr_deviation(model, ref, mask_hr)
    if s.schedule == "apgd":
        res = apgd_steps(objective, x0, budget, start=start, mask=mask)
    else:
        res = run_steps(objective, x0, budget, start=start, mask=mask, momentum=s.momentum)
    outputs = {"sr_clean": sr_clean}
    if mask_hr is not None:
        outputs["mask_hr"] = mask_hr
    return Raw(res.x, outputs=outputs, diagnostics={"losses": res.losses}, objective=objective)


def _random(s: Any) -> bool:
    return bool(s.random_start)


register_attack(
    "basic",
    kind="sr",
    domain="sr",
    norm="linf",
    settings=SRSettings,
    core=_basic_core,
    stochastic=_random,
    description="SR basic attack: I-FGSM on ||f(X) - R||, steps of eps/T",
    reference="Choi et al. 2019",
)
register_attack(
    "partial",
    kind="sr",
    domain="sr",
    norm="linf",
    settings=PartialSettings,
    core=_basic_core,
    stochastic=_random,
    description="SR partial attack: perturb inside an LR mask, degrade the SR output outside",
    reference="Choi et al. 2019",
)


def basic_attack(
    model: nn.Module,
    x0: torch.Tensor,
    *,
    eps: float = 8 / 255,
    hr: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    **settings: Any,
) -> AttackResult:
    """Image-specific I-FGSM attack on an SR model (see the module docstring).

    Args:
        model: SR model ``(N,3,h,w) -> (N,3,sh,sw)``; its train/eval mode is restored.
        x0: clean LR images in ``[0, 1]`` (not modified).
        eps: total L-inf budget ``alpha``.
        hr: HR images, needed by the ``ground-truth`` reference.
        generator: source of the random start.
        settings: :class:`SRSettings` (``steps``, ``reference``, ``random_start``,
            ``momentum``).

    Raises:
        InputError: budget out of range, ``clean`` without a random start, bad reference.
        ShapeError: inputs of the wrong shape.

    Shape:
        ``(N, 3, h, w)`` -> :class:`AttackResult` (``sr_clean``/``sr_adv`` ``(N, 3, sh, sw)``).
    """
    return create_attack("basic", eps=eps, **settings)(model, x0, hr, generator=generator)


def partial_attack(
    model: nn.Module,
    x0: torch.Tensor,
    mask: str,
    *,
    eps: float = 8 / 255,
    hr: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    **settings: Any,
) -> AttackResult:
    """The partial attack: :func:`basic_attack` inside ``mask`` (``center:F``,
    ``rect:T,L,H,W`` or a mask file); ``outputs["mask_hr"]`` is the upscaled mask.

    Shape:
        ``(N, 3, h, w)`` -> :class:`AttackResult`.
    """
    attack = create_attack("partial", eps=eps, mask=mask, **settings)
    return attack(model, x0, hr, generator=generator)


def masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR (peak 255, float64) over the pixels where ``mask`` is 1, per image.

    Shape:
        ``(N, C, H, W)`` x2 and mask ``(N|1, 1, H, W)`` -> ``(N,)``.
    """
    m = torch.broadcast_to(mask.to(torch.float64), (a.shape[0], 1, *a.shape[-2:]))
    se = ((a.double() - b.double()) * 255.0) ** 2 * m
    count = (m.flatten(1).sum(1) * a.shape[1]).clamp_min(1.0)
    return 10.0 * torch.log10(255.0**2 / (se.flatten(1).sum(1) / count))


def sr_metrics(
    x0: torch.Tensor,
    x_adv: torch.Tensor,
    sr_clean: torch.Tensor,
    sr_adv: torch.Tensor,
    *,
    hr: torch.Tensor | None = None,
    mask_hr: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image measurements of an attacked SR input (PSNR in dB, peak 255, float64).

    ``lr_psnr`` (X vs X0), ``sr_psnr`` (f(X) vs f(X0)), each in RGB (the paper's tables) and
    on Y (``*_y``), whole images; with ``hr``: ``sr_hr_psnr`` / ``sr_hr_psnr_y`` (f(X) vs HR,
    border = scale) and the clean ``sr_hr_psnr_clean``; with a partial attack's HR mask:
    ``sr_psnr_inside`` and ``sr_psnr_outside`` (f(X) vs f(X0) inside and outside ``M_H``:
    the leakage).

    Shape:
        ``(N, 3, h, w)`` x2, ``(N, 3, sh, sw)`` x2 -> values ``(N,)`` float64.
    """
    from advsr.metrics import psnr

    out = {
        "lr_psnr": psnr(x_adv, x0),
        "lr_psnr_y": psnr(x_adv, x0, y_channel=True),
        "sr_psnr": psnr(sr_adv, sr_clean),
        "sr_psnr_y": psnr(sr_adv, sr_clean, y_channel=True),
    }
    if hr is not None:
        s = sr_clean.shape[-1] // x0.shape[-1]
        out["sr_hr_psnr"] = psnr(sr_adv, hr, crop_border=s)
        out["sr_hr_psnr_y"] = psnr(sr_adv, hr, crop_border=s, y_channel=True)
        out["sr_hr_psnr_clean"] = psnr(sr_clean, hr, crop_border=s)
    if mask_hr is not None:
        out["sr_psnr_inside"] = masked_psnr(sr_adv, sr_clean, mask_hr)
        out["sr_psnr_outside"] = masked_psnr(sr_adv, sr_clean, 1.0 - mask_hr)
    return out


def sr_attack_metrics(
    x0: torch.Tensor, res: AttackResult, *, hr: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """:func:`sr_metrics` of an SR attack's result.

    Shape:
        values ``(N,)`` float64.
    """
    return sr_metrics(
        x0, res.x_adv, res.sr_clean, res.sr_adv, hr=hr, mask_hr=res.outputs.get("mask_hr")
    )
