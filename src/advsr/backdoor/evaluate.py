"""Evaluation of a (possibly backdoored) RefSR model: clean fidelity and attack effectiveness.

BadRefSR (``shared/papers/badrefsr_backdoor_refsr.txt``, sec. IV-A "Metrics", Table 1,
Fig. 3) measures two things on a test set of ``(LR, Ref, HR)`` triplets:

* **functionality preservation**: PSNR / SSIM of ``F(LR, Ref)`` against the ground truth HR;
* **attack effectiveness**: PSNR / SSIM of ``F(LR, trigger(Ref))`` against the attacker's
  target image.

:func:`evaluate_backdoor` computes both per image, plus an attack-success flag per image and
the PSNR / SSIM of the *clean* output ``F(LR, Ref)`` against the target (what the target
similarity is without a trigger: a backdoor is trigger-specific when this stays low while
the triggered value is high). :func:`backdoor_table` lays results out like Table 1 (one row
per trigger and poisoning rate; the paper puts triggers in columns and "w/o" / "w" trigger
in rows, the same numbers transposed), :func:`rate_curves` / :func:`rate_plots` give the
metric-versus-poisoning-rate series of Fig. 3 and :func:`image_grid` the visual examples.

Conventions:

* Metrics on the **Y channel** (BT.601 luma, as :mod:`advsr.metrics`), as the paper states
  for all its PSNR and SSIM values; ``crop_border`` defaults to the SR scale (the usual SR
  convention; the paper does not say).
* Model outputs are **rounded to 8 bits** (:func:`advsr.imaging.quantize`) before scoring, as
  published SR tables score saved PNGs. The triggered Ref is clamped to [0, 1] but not
  rounded, exactly as :class:`~advsr.backdoor.poison.PoisonedTriplets` builds training Refs.
* The target is brought to the HR size exactly as for poisoning: centre square crop, MATLAB
  bicubic resize, 8-bit rounding (a rate-0 :class:`PoisonedTriplets` builds it).
* **Attack success rate (ASR)**: the paper reports no ASR and no threshold, only mean PSNR /
  SSIM. Here an image counts as a success when the triggered output is close to the target:
  ``PSNR_Y >= asr_psnr`` **and** ``SSIM_Y >= asr_ssim`` (defaults 20 dB and 0.7, a choice of
  advsr, on the same Y-channel metrics as the rest; both thresholds are options). An output
  equal to the target has PSNR ``inf`` and SSIM 1, a success.
* Means are plain means of the per-image values (BasicSR's convention); one image with an
  output identical to its reference makes a mean PSNR ``inf``.

The model runs in eval mode under ``torch.no_grad`` in batches of ``batch_size``; the train /
eval mode of every sub-module is restored afterwards. Tensors go to the device of the
model's parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from advsr.backdoor.poison import PoisonedTriplets, RefSRTriplets
from advsr.checks import check_int_range, check_non_negative, check_positive_int
from advsr.errors import InputError, ShapeError
from advsr.imaging.quantize import quantize
from advsr.metrics import psnr, ssim
from advsr.modes import eval_mode
from advsr.report import Figure, Plot

__all__ = [
    "BACKDOOR_HEADER",
    "BACKDOOR_METRICS",
    "BackdoorEval",
    "RateCurves",
    "backdoor_table",
    "evaluate_backdoor",
    "flat_target_score",
    "image_grid",
    "rate_curves",
    "rate_plots",
]

TriggerFn = Callable[[torch.Tensor], torch.Tensor]
TargetSource = torch.Tensor | str | Path

BACKDOOR_HEADER: tuple[str, ...] = (
    "Trigger",
    "p",
    "Clean PSNR/SSIM (vs HR)",
    "Triggered PSNR/SSIM (vs target)",
    "ASR",
    "No trigger PSNR/SSIM (vs target)",
)
"""Column names of :func:`backdoor_table` rows."""

BACKDOOR_METRICS: tuple[str, ...] = (
    "clean_psnr",
    "clean_ssim",
    "triggered_psnr",
    "triggered_ssim",
    "untriggered_psnr",
    "untriggered_ssim",
)
"""The per-image metrics of a :class:`BackdoorEval` (its tensor fields)."""


@dataclass(frozen=True, eq=False)
class BackdoorEval:
    """Per-image backdoor metrics of one model on one test set (all ``(N,)`` float64).

    Attributes:
        names: sample names.
        clean_psnr: PSNR_Y of ``F(LR, Ref)`` vs HR (dB).
        clean_ssim: SSIM_Y of ``F(LR, Ref)`` vs HR.
        triggered_psnr: PSNR_Y of ``F(LR, trigger(Ref))`` vs the target (dB).
        triggered_ssim: SSIM_Y of ``F(LR, trigger(Ref))`` vs the target.
        untriggered_psnr: PSNR_Y of ``F(LR, Ref)`` vs the target (no trigger; dB).
        untriggered_ssim: SSIM_Y of ``F(LR, Ref)`` vs the target.
        success: ``(N,)`` bool, triggered PSNR >= ``asr_psnr`` and SSIM >= ``asr_ssim``.
        asr_psnr: PSNR threshold of a success (dB).
        asr_ssim: SSIM threshold of a success.
        crop_border: pixels cropped from each side before scoring.
    """

    names: tuple[str, ...]
    clean_psnr: torch.Tensor
    clean_ssim: torch.Tensor
    triggered_psnr: torch.Tensor
    triggered_ssim: torch.Tensor
    untriggered_psnr: torch.Tensor
    untriggered_ssim: torch.Tensor
    success: torch.Tensor
    asr_psnr: float
    asr_ssim: float
    crop_border: int

    def __len__(self) -> int:
        return len(self.names)

    @property
    def asr(self) -> float:
        """Attack success rate: the fraction of images whose triggered output hits the target."""
        return float(self.success.to(torch.float64).mean())

    def means(self) -> dict[str, float]:
        """Mean of every per-image metric, plus ``asr`` (keys are the attribute names)."""
        out = {k: float(getattr(self, k).mean()) for k in BACKDOOR_METRICS}
        out["asr"] = self.asr
        return out


def _placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter/buffer (CPU float32 if none)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _sr(
    model: nn.Module, lr: torch.Tensor, ref: torch.Tensor, hr_shape: torch.Size
) -> torch.Tensor:
    """``quantize(F(lr, ref))`` with its shape checked against the HR batch."""
    out = model(lr, ref)
    if not isinstance(out, torch.Tensor) or out.shape != hr_shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(f"the RefSR model returned {got}, expected the HR shape {tuple(hr_shape)}")
    return quantize(out)


def _target(clean: RefSRTriplets, trigger: TriggerFn, target: TargetSource) -> torch.Tensor:
    """The target at the HR size, built exactly as poisoning builds it (rate-0 poisoned set)."""
    return PoisonedTriplets(clean, trigger, target, rate=0.0).target


def flat_target_score(
    clean: RefSRTriplets, target: TargetSource, *, crop_border: int | None = None
) -> tuple[float, float]:
    """PSNR_Y / SSIM_Y against the target of a flat image of the target's mean colour.

    The floor a backdoor output must clear to carry any of the target's structure: a model
    that only learnt the target's average colour already scores this (against skimage's
    ``hubble_deep_field`` at 64 px, a mostly black image, 23.8 dB; against ``camera`` 12.2 dB).

    Shape:
        the target is brought to the set's HR size as for poisoning; returns two floats.

    Example:
        >>> data = RefSRTriplets("stereo", hr_size=32)
        >>> p, s = flat_target_score(data, torch.full((1, 3, 32, 32), 0.5))
        >>> math.isinf(p), round(s, 6)
        (True, 1.0)
    """
    border = clean.scale if crop_border is None else check_int_range(crop_border, "crop_border", 0)
    tgt = _target(clean, lambda r: r, target)
    flat = quantize(tgt.mean(dim=(2, 3), keepdim=True).expand_as(tgt))
    return (
        float(psnr(flat, tgt, crop_border=border, y_channel=True)),
        float(ssim(flat, tgt, crop_border=border, y_channel=True)),
    )


def evaluate_backdoor(
    model: nn.Module,
    clean: RefSRTriplets,
    trigger: TriggerFn,
    target: TargetSource,
    *,
    batch_size: int = 4,
    crop_border: int | None = None,
    asr_psnr: float = 20.0,
    asr_ssim: float = 0.7,
) -> BackdoorEval:
    """Clean fidelity and backdoor effectiveness of a RefSR model (see the module docstring).

    Args:
        model: RefSR model with ``forward(lr, ref)``.
        clean: clean test triplets.
        trigger: batched Ref -> triggered Ref (e.g. an :mod:`advsr.backdoor.triggers` trigger).
        target: the attacker's target image ``(1, 3, h, w)`` in [0, 1] or its path; cropped
            to a centre square and resized to the HR size as for poisoning.
        batch_size: triplets per forward pass.
        crop_border: pixels cropped from each side before scoring (default: the scale).
        asr_psnr: PSNR_Y (dB) the triggered output must reach to count as a success.
        asr_ssim: SSIM_Y the triggered output must reach to count as a success.

    Returns:
        the per-image metrics (:class:`BackdoorEval`).

    Raises:
        InputError: bad batch size, border or thresholds.
        ShapeError: the model output does not have the HR shape.

    Shape:
        triplets ``(1, 3, H/s, W/s)``, ``(1, 3, H, W)``, ``(1, 3, H, W)``; outputs ``(N,)``.

    Example:
        >>> from advsr.backdoor.triggers import BadNets
        >>> class Up(nn.Module):
        ...     def forward(self, lr, ref):
        ...         return F.interpolate(lr, scale_factor=4, mode="bicubic")
        >>> data = RefSRTriplets("stereo", hr_size=32)
        >>> ev = evaluate_backdoor(Up(), data, BadNets(), torch.zeros(1, 3, 32, 32))
        >>> ev.asr, len(ev)
        (0.0, 1)
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    border = clean.scale if crop_border is None else check_int_range(crop_border, "crop_border", 0)
    thr_psnr = check_non_negative(asr_psnr, "asr_psnr")
    if isinstance(asr_ssim, bool) or not isinstance(asr_ssim, int | float):
        raise InputError(f"asr_ssim must be a number in [-1, 1], got {asr_ssim!r}")
    thr_ssim = float(asr_ssim)
    if not -1.0 <= thr_ssim <= 1.0:
        raise InputError(f"asr_ssim must be a number in [-1, 1], got {asr_ssim!r}")
    tgt = _target(clean, trigger, target)
    device, dtype = _placement(model)
    tgt = tgt.to(device=device, dtype=dtype)
    parts: dict[str, list[torch.Tensor]] = {
        k: []
        for k in ("cp", "cs", "tp", "ts", "up", "us")  # clean / triggered / untriggered
    }
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(clean), batch_size):
            items = [clean[i] for i in range(start, min(start + batch_size, len(clean)))]
            lr = torch.cat([t.lr for t in items]).to(device=device, dtype=dtype)
            ref = torch.cat([t.ref for t in items]).to(device=device, dtype=dtype)
            hr = torch.cat([t.hr for t in items]).to(device=device, dtype=dtype)
            sr = _sr(model, lr, ref, hr.shape)
            sr_trig = _sr(model, lr, trigger(ref).clamp(0.0, 1.0), hr.shape)
            tg = tgt.expand_as(hr)
            for key, (x, y) in {
                "c": (sr, hr),
                "t": (sr_trig, tg),
                "u": (sr, tg),
            }.items():
                parts[key + "p"].append(psnr(x, y, crop_border=border, y_channel=True).cpu())
                parts[key + "s"].append(ssim(x, y, crop_border=border, y_channel=True).cpu())
    cat = {k: torch.cat(v) for k, v in parts.items()}
    success = (cat["tp"] >= thr_psnr) & (cat["ts"] >= thr_ssim)
    return BackdoorEval(
        names=tuple(t.name for t in clean.triplets),
        clean_psnr=cat["cp"],
        clean_ssim=cat["cs"],
        triggered_psnr=cat["tp"],
        triggered_ssim=cat["ts"],
        untriggered_psnr=cat["up"],
        untriggered_ssim=cat["us"],
        success=success,
        asr_psnr=thr_psnr,
        asr_ssim=thr_ssim,
        crop_border=border,
    )


Results = Mapping[tuple[str, float], "BackdoorEval | Mapping[str, float]"]
"""Evaluations keyed by ``(trigger name, poisoning rate)``: :class:`BackdoorEval` objects or
their :meth:`BackdoorEval.means` (as summaries rebuilt from stored rows give)."""


def _means_of(ev: BackdoorEval | Mapping[str, float]) -> Mapping[str, float]:
    return ev.means() if isinstance(ev, BackdoorEval) else ev


def _pair(p: float, s: float) -> str:
    """``"25.85/0.774"`` (Table 1's format); infinite PSNR reads ``inf``."""
    ps = "inf" if math.isinf(p) else f"{p:.2f}"
    return f"{ps}/{s:.3f}"


def backdoor_table(results: Results) -> list[list[str]]:
    """Rows of a Table-1-style summary, one per ``(trigger, rate)`` in the mapping's order.

    Columns are :data:`BACKDOOR_HEADER`: trigger, poisoning rate, clean PSNR/SSIM (paper's
    "w/o" row), triggered PSNR/SSIM (paper's "w" row), ASR in percent, and the clean
    output's PSNR/SSIM against the target.

    Args:
        results: evaluations (or their means) keyed by ``(trigger name, poisoning rate)``.

    Returns:
        rows of formatted strings (``ReportTable(title, BACKDOOR_HEADER, rows)``).
    """
    rows = []
    for (name, rate), ev in results.items():
        m = _means_of(ev)
        rows.append(
            [
                name,
                f"{rate:g}",
                _pair(m["clean_psnr"], m["clean_ssim"]),
                _pair(m["triggered_psnr"], m["triggered_ssim"]),
                f"{100 * m['asr']:.1f}%",
                _pair(m["untriggered_psnr"], m["untriggered_ssim"]),
            ]
        )
    return rows


@dataclass(frozen=True)
class RateCurves:
    """Metric-versus-poisoning-rate series of one trigger (Fig. 3), points sorted by rate."""

    clean_psnr: list[tuple[float, float]]
    clean_ssim: list[tuple[float, float]]
    triggered_psnr: list[tuple[float, float]]
    triggered_ssim: list[tuple[float, float]]
    asr: list[tuple[float, float]]


def rate_curves(results: Results) -> dict[str, RateCurves]:
    """Per trigger, the ``(p, mean metric)`` series over poisoning rates (Fig. 3).

    Args:
        results: evaluations (or their means) keyed by ``(trigger name, poisoning rate)``.

    Returns:
        ``{trigger: RateCurves}`` in order of first appearance; each series sorted by ``p``.

    Example:
        >>> rate_curves({})
        {}
    """
    by_trigger: dict[str, list[tuple[float, Mapping[str, float]]]] = {}
    for (name, rate), ev in results.items():
        by_trigger.setdefault(name, []).append((float(rate), _means_of(ev)))
    out = {}
    for name, pts in by_trigger.items():
        pts.sort(key=lambda t: t[0])

        def series(
            key: str, pts: list[tuple[float, Mapping[str, float]]] = pts
        ) -> list[tuple[float, float]]:
            return [(p, m[key]) for p, m in pts]

        out[name] = RateCurves(
            series("clean_psnr"),
            series("clean_ssim"),
            series("triggered_psnr"),
            series("triggered_ssim"),
            series("asr"),
        )
    return out


def rate_plots(results: Results, psnr_cap: float = 100.0) -> list[Plot]:
    """Fig. 3 as three :class:`advsr.report.Plot` charts: clean PSNR, triggered PSNR, ASR.

    Args:
        results: evaluations (or their means) keyed by ``(trigger name, poisoning rate)``.
        psnr_cap: infinite mean PSNRs (exact outputs) are drawn at this value.

    Returns:
        the three plots, one series per trigger.
    """
    curves = rate_curves(results)

    def cap(ser: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(p, min(v, psnr_cap)) for p, v in ser]

    return [
        Plot(
            "Clean PSNR_Y vs HR",
            "poisoning rate p",
            "PSNR (dB)",
            [(n, cap(c.clean_psnr)) for n, c in curves.items()],
            ylim=None,
        ),
        Plot(
            "Triggered PSNR_Y vs target",
            "poisoning rate p",
            "PSNR (dB)",
            [(n, cap(c.triggered_psnr)) for n, c in curves.items()],
            ylim=None,
        ),
        Plot(
            "Attack success rate",
            "poisoning rate p",
            "ASR",
            [(n, c.asr) for n, c in curves.items()],
        ),
    ]


def image_grid(
    model: nn.Module,
    triplets: RefSRTriplets,
    trigger: TriggerFn,
    indices: Sequence[int],
    target: TargetSource | None = None,
) -> list[Figure]:
    """Visual examples: one :class:`advsr.report.Figure` per chosen sample.

    Each figure shows LR (nearest-neighbour upsampled to the HR size for display), Ref,
    triggered Ref, ``F(LR, Ref)``, ``F(LR, triggered Ref)`` (both rounded to 8 bits), HR and,
    when ``target`` is given, the target at the HR size. Captions of the outputs give their
    PSNR_Y (border = scale) against HR and against the target respectively.

    Args:
        model: RefSR model with ``forward(lr, ref)``.
        triplets: clean triplets.
        trigger: batched Ref -> triggered Ref.
        indices: samples to show.
        target: the attacker's target (tensor or path), or None to leave it out.

    Returns:
        one figure per index, images ``(1, 3, H, W)`` on the CPU.

    Raises:
        InputError: an index outside the set.
    """
    n = len(triplets)
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            raise InputError(f"sample index {i!r} is outside the set of {n} triplets")
    device, dtype = _placement(model)
    tgt = None if target is None else _target(triplets, trigger, target)
    border = triplets.scale
    figures = []
    with eval_mode(model), torch.no_grad():
        for i in indices:
            t = triplets[i]
            lr, ref, hr = (x.to(device=device, dtype=dtype) for x in (t.lr, t.ref, t.hr))
            ref_trig = trigger(ref).clamp(0.0, 1.0)
            sr = _sr(model, lr, ref, hr.shape)
            sr_trig = _sr(model, lr, ref_trig, hr.shape)
            up = F.interpolate(lr, size=tuple(hr.shape[-2:]), mode="nearest")
            p_clean = float(psnr(sr, hr, crop_border=border, y_channel=True))
            trig_caption = "F(LR, triggered Ref)"
            if tgt is not None:
                p_trig = float(psnr(sr_trig, tgt.to(sr_trig), crop_border=border, y_channel=True))
                trig_caption += f", {p_trig:.2f} dB vs target"
            images = [
                ("LR (nearest)", up),
                ("Ref", ref),
                ("triggered Ref", ref_trig),
                (f"F(LR, Ref), {p_clean:.2f} dB vs HR", sr),
                (trig_caption, sr_trig),
                ("HR", hr),
            ]
            if tgt is not None:
                images.append(("target", tgt))
            title = f"{t.name}: trigger {getattr(trigger, 'name', type(trigger).__name__)}"
            figures.append(Figure(title, [(c, x.detach().cpu().float()) for c, x in images]))
    return figures
