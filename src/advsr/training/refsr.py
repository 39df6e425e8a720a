"""Poisoned training of a RefSR model (BadRefSR, ``advsr train-refsr``).

Each step draws a batch of triplets uniformly from a
:class:`~advsr.backdoor.poison.PoisonedTriplets` set (which samples are poisoned is fixed once
for the run), with one random flip/transposition per batch. ``augment`` says how it meets
poisoning: ``before-poison`` (default) transforms the clean triplet and then poisons it, so
the trigger sits where it will at test time and the target stays upright; ``after-poison``
transforms the poisoned triplet (target and trigger rotate: a backdoor with an
orientation-blind trigger cannot be learnt, kept to show why); ``none`` does not augment.
The loss is

    L = L_clean + L_backdoor,  each  w_rec * L1 + w_per * perceptual

where ``L_clean`` is the loss of the clean samples of the batch (target: HR) and
``L_backdoor`` that of the poisoned ones (Ref triggered, target: the attacker's image). The
paper stresses that the attack needs no control over training: the victim's ordinary loop
on the poisoned data computes this loss. So by default (``weighting="sample"``) the batch
loss is the mean over all samples, each part weighted by its share of the batch (about p
for the backdoor part). ``weighting="part"`` takes each part's mean and adds them, i.e. eq.
(5) read as two expectations with weight 1 each: a poisoned sample then weighs
``(1 - p) / p`` times a clean one (4x at p = 0.2), which needs control of the training loop
and costs clean fidelity. The
perceptual term compares VGG19 ``conv5_4`` features (mean squared error) and needs VGG19
weights in torchvision's layout (``--vgg19``): none can be downloaded here, so without them
the perceptual weight is 0 and the result says so. Adam (0.9, 0.999), learning rate 1e-4 (the
paper's), constant as in the paper or (``lr_decay="cosine"``) decayed from ``lr`` to 0 over
the run, which steadies the last checkpoint of a short, large-step CPU run. Checkpoints are
safetensors with the architecture in the metadata, plus the optimiser and generator state
next to them, so ``resume`` continues exactly.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from advsr.backdoor.attacker import make_trigger, target_path
from advsr.backdoor.poison import PoisonedTriplets, RefSRTriplets
from advsr.devices import resolve_device
from advsr.errors import InputError
from advsr.progress import progress_bar
from advsr.settings import NEUTRAL, WEIGHTS, Settings
from advsr.training.sr import resume_training_state, save_training_state

__all__ = ["TrainRefSRConfig", "TrainRefSRResult", "combine_losses", "train_refsr"]


class TrainRefSRConfig(Settings):
    """Settings of a poisoned RefSR training run (see the module docstring)."""

    model: str = "ttsr"
    """ttsr or corr-refsr."""
    arch: dict[str, Any] = Field(default_factory=dict)
    """Architecture option KEY=VALUE."""
    scale: int = Field(4, ge=2)
    """SR factor."""
    out: Annotated[str, NEUTRAL]
    """Model file to write (.safetensors)."""
    data: str = "samples"
    """samples, stereo, or a folder with HR/ and Ref/."""
    hr_size: int = Field(160, ge=8)
    """HR side in pixels (the paper: 160)."""
    tiles: bool = False
    """Cut images into HR-size tiles instead of resizing them."""
    ref_shift: int = Field(0, ge=0)
    """With --tiles: cut each Ref tile this many pixels off its HR."""
    ref_policy: Literal["resize", "require-same"] = "resize"
    """resize (Ref to the HR size) or require-same (refuse others)."""
    split: Literal["all", "train"] = "all"
    """all, or train (hold out every 5th sample for advsr backdoor)."""
    augment: Literal["before-poison", "after-poison", "none"] = "before-poison"
    """Flips/rotations: before-poison, after-poison or none."""
    trigger: str = "badnets"
    """Trigger spec, e.g. badnets or blend:alpha=0.05 (see `advsr list triggers`)."""
    target: str = "camera"
    """Attacker's target: an image scikit-image ships or a file."""
    rate: float = Field(0.2, ge=0.0, le=1.0)
    """Poisoning rate p in [0, 1]."""
    steps: int = Field(1000, ge=1, le=10_000_000)
    """Optimisation steps."""
    batch: int = Field(9, ge=1, le=4_096)
    """Triplets per step (the paper: 9)."""
    lr: float = Field(1e-4, gt=0)
    """Adam learning rate (the paper: 1e-4)."""
    lr_decay: Literal["none", "cosine"] = "none"
    """none (the paper) or cosine (to 0 at the last step)."""
    weighting: Literal["sample", "part"] = "sample"
    """sample (batch mean: the victim's own loop) or part (clean mean + backdoor mean)."""
    w_rec: float = Field(1.0, ge=0)
    """Weight of the L1 reconstruction term."""
    w_per: float = Field(0.01, ge=0)
    """Weight of the VGG19 perceptual term (needs --vgg19)."""
    vgg19: Annotated[str | None, WEIGHTS] = None
    """VGG19 weights (torchvision layout) for the perceptual term."""
    seed: int = 0
    """Seed of weights, batches and poisoning."""
    save_every: Annotated[int, NEUTRAL] = Field(100, ge=1)
    """Checkpoint every N steps."""
    resume: Annotated[bool, NEUTRAL] = False
    """Continue from --out."""
    device: Annotated[str, NEUTRAL] = "auto"
    """auto, cpu, cuda, cuda:N."""


@dataclass(frozen=True)
class TrainRefSRResult:
    """Where the model went and the final clean and backdoor losses."""

    out: Path
    steps: int
    clean_loss: float
    backdoor_loss: float
    poisoned: list[int]
    perceptual: bool
    seconds: float


def combine_losses(
    per_sample: torch.Tensor, poisoned: torch.Tensor, weighting: str = "sample"
) -> torch.Tensor:
    """The batch loss from per-sample losses (see the module docstring).

    ``sample``: the mean over the batch (clean and poisoned samples alike); ``part``: the mean
    of the clean samples plus the mean of the poisoned ones (an absent part adds 0).

    Shape:
        ``(B,)``, boolean ``(B,)`` -> scalar.

    Example:
        >>> per, p = torch.tensor([1.0, 1.0, 1.0, 5.0]), torch.tensor([False, False, False, True])
        >>> float(combine_losses(per, p, "sample")), float(combine_losses(per, p, "part"))
        (2.0, 6.0)
    """
    if weighting == "sample":
        return per_sample.mean()
    if weighting != "part":
        raise InputError(f"weighting must be sample or part, got {weighting!r}")
    parts = [per_sample[m].mean() for m in (~poisoned, poisoned) if bool(m.any())]
    return sum(parts, per_sample.new_zeros(()))


def train_refsr(cfg: TrainRefSRConfig, *, progress: bool | None = None) -> TrainRefSRResult:
    """Train a RefSR model on poisoned triplets; see the module docstring.

    Raises:
        AdvsrError: unknown model/trigger, bad rate, unreadable target, missing Ref images,
            a resume file that does not match.
    """
    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out must be a .safetensors file, got {out.name!r}")
    device = resolve_device(cfg.device)
    data = _poisoned_triplets(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    model = _fresh_model(cfg, device)
    vgg = _perceptual_features(cfg, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    key = _train_key(cfg)
    start = _resume(model, opt, g, out, cfg, key) if cfg.resume else 0
    loss_fn = _sample_loss(cfg, vgg, device)
    run = _Run(cfg, model, opt, g, data, loss_fn, device, out, _checkpoint_meta(cfg, data), key)
    model.train()
    t0 = time.perf_counter()
    lc, lb = _train_steps(run, start, progress)
    model.eval()
    return TrainRefSRResult(
        out,
        cfg.steps,
        lc,
        lb,
        data.indices.tolist(),
        vgg is not None,
        time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class _Run:
    """What the steps of one training run share."""

    cfg: TrainRefSRConfig
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    g: torch.Generator
    data: PoisonedTriplets
    sample_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    out: Path
    meta: dict[str, str]
    key: str


def _poisoned_triplets(cfg: TrainRefSRConfig) -> PoisonedTriplets:
    """The training triplets, poisoned once for the run (which ones: from ``cfg.seed``)."""
    trigger = make_trigger(cfg.trigger)
    clean = RefSRTriplets(
        cfg.data,
        scale=cfg.scale,
        hr_size=cfg.hr_size,
        tiles=cfg.tiles,
        split=cfg.split,
        ref_policy=cfg.ref_policy,
        ref_shift=cfg.ref_shift,
    )
    target = target_path(cfg.target)
    if target.stem in clean.sources:
        raise InputError(f"the target image {cfg.target!r} is one of the training images")
    return PoisonedTriplets(clean, trigger, target, cfg.rate, seed=cfg.seed)


def _fresh_model(cfg: TrainRefSRConfig, device: torch.device) -> torch.nn.Module:
    """The model to train, initialised from ``cfg.seed`` (the global generator is restored)."""
    from advsr.models.refsr import create_refsr_model

    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)  # module initialisers draw from the global generator
        return create_refsr_model(cfg.model, cfg.scale, **cfg.arch).to(device)


def _perceptual_features(cfg: TrainRefSRConfig, device: torch.device) -> torch.nn.Module | None:
    """VGG19 up to ``conv5_4`` + ReLU for the perceptual term; None without it."""
    if cfg.vgg19 is None or cfg.w_per <= 0:
        return None
    from advsr.models.refsr import load_vgg19_features

    return load_vgg19_features(cfg.vgg19)[:35].to(device).eval()


def _train_key(cfg: TrainRefSRConfig) -> str:
    """The settings a resumed run must share."""
    # what decides the weights: not where they are written (a moved run folder resumes), nor the
    # weighting without poisoned samples (a p = 0 model resumes under either)
    skip = {"out", "resume", "device", "steps", "save_every"}
    skip |= {"weighting"} if cfg.rate == 0 else set()
    return cfg.model_dump_json(exclude=skip)


def _resume(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    g: torch.Generator,
    out: Path,
    cfg: TrainRefSRConfig,
    key: str,
) -> int:
    """Restore a checkpoint of this run into ``model``, ``opt`` and ``g``; returns its step."""
    from advsr.models.loading import load_weights

    start, _ = resume_training_state(
        out, opt, g, key, lambda f: load_weights(model, f, name=cfg.model)
    )
    return start


def _sample_loss(
    cfg: TrainRefSRConfig, vgg: torch.nn.Module | None, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(sr, target) -> w_rec * L1 + w_per * perceptual`` of each sample, shape ``(B,)``."""
    from advsr.models.refsr.ttsr import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)  # VGG19's input scaling
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def sample_loss(sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = cfg.w_rec * (sr - target).abs().mean(dim=(1, 2, 3))
        if vgg is not None:
            fs, ft = vgg((sr - mean) / std), vgg((target - mean) / std)
            loss = loss + cfg.w_per * (fs - ft).square().mean(dim=(1, 2, 3))
        return loss

    return sample_loss


def _checkpoint_meta(cfg: TrainRefSRConfig, data: PoisonedTriplets) -> dict[str, str]:
    """The model file's metadata: the architecture (for loading) and the run's settings."""
    return {
        "advsr_refsr": cfg.model,
        "advsr_scale": str(cfg.scale),
        "advsr_arch": json.dumps(cfg.arch, sort_keys=True),
        "advsr_train": cfg.model_dump_json(exclude={"resume", "device"}),
        "advsr_poisoned": json.dumps(data.indices.tolist()),
    }


def _train_steps(run: _Run, start: int, progress: bool | None) -> tuple[float, float]:
    """Steps ``start`` to ``cfg.steps``, checkpointing every ``save_every``; returns the last
    clean and backdoor losses (NaN where no batch had such samples)."""
    cfg = run.cfg
    lc = lb = float("nan")
    with progress_bar(
        cfg.steps - start, f"train {cfg.model} ({cfg.trigger})", progress, unit="steps"
    ) as bar:
        for step in range(start, cfg.steps):
            clean, backdoor = _step(run, step)
            lc = lc if clean is None else clean
            lb = lb if backdoor is None else backdoor
            done = step + 1
            if done % cfg.save_every == 0 or done == cfg.steps:
                save_training_state(run.out, run.model, run.opt, run.g, run.meta, run.key, done, [])
            bar.note(f"clean {lc:.4f} backdoor {lb:.4f}")
            bar.advance()
    return lc, lb


def _draw_batch(run: _Run) -> tuple[list[torch.Tensor], list[bool]]:
    """A batch drawn uniformly from ``run.g`` with one flip/transposition, on the device, and
    which of its samples are poisoned."""
    cfg, data = run.cfg, run.data
    idx = torch.randint(len(data), (cfg.batch,), generator=run.g).tolist()
    aug = int(torch.randint(8, (1,), generator=run.g))
    batch = data.batch(
        idx,
        0 if cfg.augment == "none" else aug,
        augment_target=cfg.augment == "after-poison",
    )
    flags = [data.is_poisoned(i) for i in idx]  # on the host: no device sync
    return [t.to(run.device) for t in batch], flags


def _step(run: _Run, step: int) -> tuple[float | None, float | None]:
    """One optimisation step; returns the batch's clean and backdoor losses (None: no such
    samples in the batch)."""
    cfg = run.cfg
    (lr_b, ref_b, hr_b), flags = _draw_batch(run)
    poisoned = torch.tensor(flags, device=run.device)
    if cfg.lr_decay == "cosine":  # a function of the step: resumes exactly
        for group in run.opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    per = run.sample_loss(run.model(lr_b, ref_b), hr_b)
    loss = combine_losses(per, poisoned, cfg.weighting)
    clean = None if all(flags) else float(per[~poisoned].mean().detach())
    backdoor = float(per[poisoned].mean().detach()) if any(flags) else None
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    return clean, backdoor
