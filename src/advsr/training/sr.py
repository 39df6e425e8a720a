"""L1 training of any zoo SR architecture (``advsr train-sr``), deterministic and resumable.

Data: HR images of a dataset (``samples`` or a folder), minus held-out names. LR images are
made once per image with MATLAB bicubic and rounded to 8 bits (as LR test files are); each
step draws random aligned LR/HR patches with flips and 90-degree rotations, from an explicit
``torch.Generator``. Optimiser: Adam with cosine learning-rate decay. Validation: Y-PSNR
(border = scale, 8-bit output) on the held-out images, shown on the progress bar.

Checkpoints are safetensors: the model (with its architecture options in the metadata, so
``create_sr_model(name, scale, weights=file)`` rebuilds it) and, next to it,
``<out>.state.safetensors`` with the optimiser moments and the generator state, so that a
resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from advsr.data import open_dataset
from advsr.devices import resolve_device
from advsr.errors import InputError, ModelLoadError, brief
from advsr.imaging.quantize import quantize
from advsr.io import save_safetensors
from advsr.metrics import psnr
from advsr.progress import progress_bar
from advsr.settings import DATA, NEUTRAL, Settings

__all__ = ["TrainSRConfig", "TrainSRResult", "train_sr"]


class TrainSRConfig(Settings):
    """Settings of an SR training run (see the field docstrings)."""

    model: str
    """Zoo architecture (the entry's default options; see `advsr list models`)."""
    scale: int = Field(2, ge=1)
    """SR factor."""
    out: Annotated[str, NEUTRAL]
    """Model checkpoint to write (.safetensors)."""
    data: Annotated[str, DATA] = "samples"
    """Dataset name or HR folder."""
    holdout: list[str] = Field(default_factory=list)
    """Image names kept out of training and used for validation."""
    arch: dict[str, Any] = Field(default_factory=dict)
    """Architecture options overriding the entry's, e.g. n_feats=32."""
    patch: int = Field(32, ge=4)
    """LR patch size (HR patches are patch * scale)."""
    batch: int = Field(16, ge=1, le=4_096)
    """Patches per step."""
    steps: int = Field(2000, ge=1, le=10_000_000)
    """Optimisation steps in all."""
    lr: float = Field(1e-3, gt=0)
    """Initial Adam learning rate (cosine-decayed to 1% of it)."""
    seed: int = 0
    """Seed of the generator that draws patches and initial weights."""
    val_every: int = Field(250, ge=1)
    """Validate (and checkpoint) every N steps."""
    resume: Annotated[bool, NEUTRAL] = False
    """Continue from --out and its .state.safetensors."""
    device: Annotated[str, NEUTRAL] = "auto"
    """auto, cpu, cuda, cuda:N."""


@dataclass(frozen=True)
class TrainSRResult:
    """Where the model went and how it ended (validation PSNR per check)."""

    out: Path
    steps: int
    final_loss: float
    val_psnr: list[tuple[int, float]]
    bicubic_val_psnr: float | None
    seconds: float


def _state_path(out: Path) -> Path:
    return out.with_name(out.name.replace(".safetensors", ".state.safetensors"))


def _draw_batch(
    lrs: list[torch.Tensor], hrs: list[torch.Tensor], cfg: TrainSRConfig, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random aligned patches with flips/rotations; all randomness from ``g``."""
    s, p = cfg.scale, cfg.patch
    idx = torch.randint(len(lrs), (cfg.batch,), generator=g).tolist()
    aug = torch.randint(8, (cfg.batch,), generator=g).tolist()
    lr_out, hr_out = [], []
    for i, a in zip(idx, aug, strict=True):
        lr, hr = lrs[i], hrs[i]
        h, w = lr.shape[-2:]
        top = int(torch.randint(h - p + 1, (1,), generator=g))
        left = int(torch.randint(w - p + 1, (1,), generator=g))
        lp = lr[..., top : top + p, left : left + p]
        hp = hr[..., top * s : (top + p) * s, left * s : (left + p) * s]
        if a & 1:
            lp, hp = lp.flip(-1), hp.flip(-1)
        if a & 2:
            lp, hp = lp.flip(-2), hp.flip(-2)
        if a & 4:
            lp, hp = lp.transpose(-1, -2), hp.transpose(-1, -2)
        lr_out.append(lp)
        hr_out.append(hp)
    return torch.cat(lr_out), torch.cat(hr_out)


def _validate(model: torch.nn.Module, pairs: list[Any], scale: int, device: torch.device) -> float:
    was = model.training
    model.eval()
    vals = []
    with torch.no_grad():
        for pr in pairs:
            sr = quantize(model(pr.lr.to(device)))
            vals.append(float(psnr(sr, pr.hr.to(device), crop_border=scale, y_channel=True)[0]))
    model.train(was)
    return sum(vals) / len(vals)


def train_sr(
    cfg: TrainSRConfig,
    *,
    progress: bool | None = None,
    on_validate: Callable[[int, float], None] | None = None,
) -> TrainSRResult:
    """Train a zoo architecture with L1 loss; see the module docstring.

    Args:
        cfg: the settings.
        progress: show a progress bar (``None``: when stderr is a terminal).
        on_validate: called with ``(step, held-out PSNR)`` after each checkpoint.

    Raises:
        AdvsrError: bad settings, unknown model/dataset, held-out names not in the dataset,
            images smaller than the patch, or a resume file that does not match.
    """
    from advsr.models.sr import SR_MODELS, create_sr_model

    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out must be a .safetensors file, got {out.name!r}")
    entry = SR_MODELS.get(cfg.model)
    if not entry.needs_weights:
        raise InputError(f"{cfg.model} has no parameters to train")
    device = resolve_device(cfg.device)
    lrs, hrs, val_pairs = _training_images(cfg, device)

    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # module initialisers draw from the global generator
    model = create_sr_model(cfg.model, cfg.scale, arch=cfg.arch, bundled=False).to(device)
    options = {**entry.options, **cfg.arch}
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg.lr)
    start = 0
    history: list[tuple[int, float]] = []
    if cfg.resume:
        start, history = _resume(model, opt, g, out, cfg)
    bicubic = None
    if val_pairs:
        bic = create_sr_model("bicubic", cfg.scale).to(device)
        bicubic = _validate(bic, val_pairs, cfg.scale, device)

    run = _Run(cfg, model, opt, g, lrs, hrs, val_pairs, device, out, options)
    model.train()
    t0 = time.perf_counter()
    loss_v = _train_steps(run, start, history, progress, on_validate)
    model.eval()
    return TrainSRResult(out, cfg.steps, loss_v, history, bicubic, time.perf_counter() - t0)


def _training_images(
    cfg: TrainSRConfig, device: torch.device
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[Any]]:
    """The LR and HR training images (on ``device``) and the held-out pairs.

    Raises:
        InputError: held-out names not in the dataset, none left to train on, or an image
            smaller than the patch.
    """
    ds = open_dataset(cfg.data, cfg.scale)
    unknown = [n for n in cfg.holdout if n not in ds.names()]
    if unknown:
        raise InputError(f"held-out images not in {cfg.data}: {', '.join(unknown)}")
    train_idx = [i for i, n in enumerate(ds.names()) if n not in cfg.holdout]
    if not train_idx:
        raise InputError("every image is held out; nothing left to train on")
    pairs = [ds[i] for i in train_idx]
    for pr in pairs:
        if min(pr.lr.shape[-2:]) < cfg.patch:
            raise InputError(f"image {pr.name} is smaller than the LR patch ({cfg.patch})")
    val_pairs = [ds[ds.names().index(n)] for n in cfg.holdout]
    lrs = [pr.lr.to(device) for pr in pairs]
    hrs = [pr.hr.to(device) for pr in pairs]
    return lrs, hrs, val_pairs


@dataclass(frozen=True)
class _Run:
    """What the steps of one training run share."""

    cfg: TrainSRConfig
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    g: torch.Generator
    lrs: list[torch.Tensor]
    hrs: list[torch.Tensor]
    val_pairs: list[Any]
    device: torch.device
    out: Path
    options: dict[str, Any]


def _train_steps(
    run: _Run,
    start: int,
    history: list[tuple[int, float]],
    progress: bool | None,
    on_validate: Callable[[int, float], None] | None,
) -> float:
    """Steps ``start`` to ``cfg.steps``, validating (appended to ``history``) and
    checkpointing every ``val_every``; returns the last step's loss."""
    cfg = run.cfg
    loss_v = float("nan")
    with progress_bar(
        cfg.steps - start, f"train {cfg.model} x{cfg.scale}", progress, unit="steps"
    ) as bar:
        for step in range(start, cfg.steps):
            loss_v = _step(run, step)
            done = step + 1
            if done % cfg.val_every == 0 or done == cfg.steps:
                if run.val_pairs:
                    psnr_v = _validate(run.model, run.val_pairs, cfg.scale, run.device)
                    history.append((done, psnr_v))
                _save(run.model, run.opt, run.g, run.out, cfg, run.options, done, history)
                if on_validate and history:
                    on_validate(*history[-1])
            val_txt = f" val {history[-1][1]:.2f} dB" if history else ""
            bar.note(f"loss {loss_v:.4f}{val_txt}")
            bar.advance()
    return loss_v


def _step(run: _Run, step: int) -> float:
    """One optimisation step at the cosine-decayed learning rate; returns its loss."""
    cfg = run.cfg
    for group in run.opt.param_groups:
        group["lr"] = cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
    lr_b, hr_b = _draw_batch(run.lrs, run.hrs, cfg, run.g)
    loss = F.l1_loss(run.model(lr_b), hr_b)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    return float(loss.detach())


def save_training_state(
    out: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    g: torch.Generator,
    model_meta: dict[str, str],
    train_key: str,
    step: int,
    history: list[tuple[int, float]],
) -> None:
    """Write the model (safetensors, ``model_meta``) and ``<out>.state.safetensors``.

    The state file holds the optimiser moments and the generator state, with ``train_key``
    (the settings a resumed run must share) and ``step`` in its metadata.
    """
    save_safetensors(out, model.state_dict(), {**model_meta, "advsr_step": str(step)})
    state: dict[str, torch.Tensor] = {"generator": g.get_state()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            state[f"opt.{i}.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    save_safetensors(
        _state_path(out),
        state,
        {"step": str(step), "history": json.dumps(history), "train": train_key},
    )


def resume_training_state(
    out: Path,
    opt: torch.optim.Optimizer,
    g: torch.Generator,
    train_key: str,
    load_model: Callable[[Path], None],
) -> tuple[int, list[tuple[int, float]]]:
    """Restore what :func:`save_training_state` wrote; returns ``(step, history)``.

    Raises:
        ModelLoadError: the state file is missing.
        InputError: the checkpoint was written with other settings.
    """
    from safetensors import safe_open

    from advsr.io import load_state_dict

    sp = _state_path(out)
    if not out.is_file():
        raise InputError(f"nothing to resume: {out} does not exist (leave out --resume)")
    if not sp.is_file():
        raise ModelLoadError(f"cannot resume: {sp} (optimiser state) is missing")
    try:
        with safe_open(str(sp), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
    except Exception as exc:  # safetensors' own error classes on damaged files
        raise ModelLoadError(f"cannot resume: {sp} is damaged ({brief(exc)})") from None
    if meta.get("train") != train_key:
        raise InputError(f"cannot resume {out}: it was trained with other settings")
    load_model(out)
    state = load_state_dict(sp)
    try:
        g.set_state(state["generator"])
        sd = opt.state_dict()
        n_params = len(sd["param_groups"][0]["params"])
        sd["state"] = {
            i: {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"opt.{i}.")}
            for i in range(n_params)
            if f"opt.{i}.step" in state
        }
        opt.load_state_dict(sd)
        history = [tuple(x) for x in json.loads(meta.get("history", "[]"))]
        return int(meta["step"]), history
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelLoadError(
            f"cannot resume: {sp} does not hold a valid state ({brief(exc)})"
        ) from None


def _train_key(cfg: TrainSRConfig) -> str:
    # not the output path: a moved run folder resumes
    return cfg.model_dump_json(exclude={"out", "resume", "device", "steps", "val_every"})


def _save(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    g: torch.Generator,
    out: Path,
    cfg: TrainSRConfig,
    options: dict[str, Any],
    step: int,
    history: list[tuple[int, float]],
) -> None:
    meta = {
        "advsr_model": cfg.model,
        "advsr_scale": str(cfg.scale),
        "advsr_arch": json.dumps(options, sort_keys=True),
        "advsr_train": cfg.model_dump_json(exclude={"resume", "device"}),
    }
    save_training_state(out, model, opt, g, meta, _train_key(cfg), step, history)


def _resume(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    g: torch.Generator,
    out: Path,
    cfg: TrainSRConfig,
) -> tuple[int, list[tuple[int, float]]]:
    from advsr.models.sr import load_weights

    return resume_training_state(
        out, opt, g, _train_key(cfg), lambda f: load_weights(model, f, name=cfg.model)
    )
