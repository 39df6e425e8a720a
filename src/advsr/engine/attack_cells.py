"""Pieces shared by the experiments: configured attacks, seeds, batches, image selection.

Example:
    >>> configured_attack("pgd", 8 / 255, steps=20, reference="clean-8bit").label
    'pgd@8/255'
    >>> configured_attack("deepfool", 8 / 255, steps=None).identity()["eps"] is None
    True
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from advsr.attacks.base import Attack, AttackResult, create_attack, parse_attack, spec_options
from advsr.attacks.budget import BUDGET
from advsr.engine.cell import (
    ATTACK,
    MAX_BATCH,
    MAX_STEPS,
    SEEDED,
    CellConfig,
    Item,
)
from advsr.errors import InputError, warn
from advsr.memory import MicroBatched
from advsr.settings import DATA, MODEL, NEUTRAL, WEIGHTS

__all__ = [
    "Batch",
    "ClassifierCellConfig",
    "ClassifierDataConfig",
    "attack_grid",
    "attacked_batches",
    "batches",
    "check_labels",
    "configured_attack",
    "correctly_classified",
    "image_generator",
    "items_of",
    "todo_batches",
]


def configured_attack(
    spec: str,
    eps: float | None,
    options: Mapping[str, Any] | None = None,
    *,
    explicit: Collection[str] | None = None,
    **common: Any,
) -> Attack:
    """The attack of a cell: ``spec`` (``name`` or ``name@budget``), the cell's budget, the
    common settings the attack has (others ignored; ``None`` = the attack's default) and
    ``options`` (every one must be a setting of the attack).

    The cell's ``eps`` is ignored by attacks without a budget (DeepFool, C&W) and by a spec
    that carries its own ``@budget``. With ``explicit`` (the settings the user gave), a
    given setting the attack does not have, a given ``eps`` beside a different ``@budget``
    and a given setting beside a different ``:key=value`` in the spec are refused instead.

    Raises:
        UnknownNameError / InputError: unknown attack, missing budget, bad settings, a
            given setting that does not apply or contradicts the spec.
    """
    entry, at_budget = parse_attack(spec)
    fields = entry.settings.model_fields
    own = spec_options(spec)  # name@budget:key=value settings win over the cell's common ones
    if explicit is not None:
        _check_given(spec, entry, at_budget, eps, own, common, set(explicit))
    settings = {k: v for k, v in common.items() if k in fields and v is not None and k not in own}
    settings.update(options or {})
    budget = None if entry.norm == "none" or at_budget is not None else eps
    return create_attack(spec, eps=budget, **settings)


def _check_given(
    spec: str,
    entry: Any,
    at_budget: float | None,
    eps: float | None,
    own: Mapping[str, Any],
    common: Mapping[str, Any],
    given: set[str],
) -> None:
    """Note the given settings this cell's attack ignores (the driver refuses one that no
    cell of the run uses: :func:`advsr.settings.note_ignored`)."""
    from advsr.attacks.budget import format_budget
    from advsr.settings import note_ignored

    note_ignored("__attack__", "")  # this cell configures an attack
    if "eps" in given and eps is not None:
        if entry.norm == "none":
            note_ignored("eps", f"{entry.name} has no budget")
        elif at_budget is not None and abs(at_budget - eps) > 1e-12:
            note_ignored(
                "eps",
                f"attack {spec} names its own budget, which eps "
                f"{format_budget(eps, entry.norm)} contradicts",
            )
    fields = entry.settings.model_fields
    for k, v in common.items():
        if k not in given or v is None:
            continue
        if k not in fields:
            have = ", ".join(f for f in fields if f != "batch_size") or "none"
            note_ignored(k, f"{entry.name} has no setting {k} (its settings: {have})")
        elif k in own and own[k] != v:
            note_ignored(k, f"{spec!r} sets {k}={own[k]}, which {k}={v} contradicts")


def attack_grid(items: list[str], eps: list[str]) -> list[tuple[str, float | None]]:
    """``(attack, budget)`` pairs from names and budgets: ``name@budget`` items keep their
    own budget, minimal attacks take none, other names take every budget in ``eps``.

    Raises:
        UnknownNameError / InputError: an unknown attack or a bad budget.

    Example:
        >>> attack_grid(["fgsm@2/255", "deepfool", "pgd"], ["4/255", "8/255"])[1:]
        [('deepfool', None), ('pgd', 0.01568627450980392), ('pgd', 0.03137254901960784)]
    """
    from advsr.attacks.budget import parse_budget

    out: list[tuple[str, float | None]] = []
    for item in items:
        entry, at = parse_attack(item)
        if at is not None or entry.norm == "none":
            out.append((item, None))
            continue
        upper = 1.0 if entry.norm in ("linf", "ssim") else None
        out += [(item, parse_budget(e, upper, f"budget of {item}")) for e in eps]
    return out


def check_budgets_used(items: list[str], eps: list[str] | None) -> None:
    """Refuse ``--eps`` when no attack of the run takes it (every one names its own
    ``@budget`` or has none), instead of ignoring it.

    Raises:
        InputError: the budgets apply to none of the attacks.
    """
    if not eps:
        return
    parsed = [(i, *parse_attack(i)) for i in items]
    takes = [i for i, entry, at in parsed if at is None and entry.norm != "none"]
    if not takes:
        raise InputError(
            f"--eps {', '.join(eps)} applies to none of the attacks ({', '.join(items)}): each "
            "names its own @budget or has none"
        )


def image_generator(seed: int, index: int) -> torch.Generator:
    """The generator of the item (or batch) starting at dataset position ``index``:
    independent of order and of resumption."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def batches(n: int, size: int) -> list[list[int]]:
    """Fixed batches of positions ``0..n-1`` (a resumed run recomputes the same batches)."""
    return [list(range(s, min(s + size, n))) for s in range(0, n, size)]


def todo_batches(items: list[Item], size: int, skip: set[str]) -> Iterator[list[int]]:
    """The fixed batches that still hold an item not in ``skip``."""
    for b in batches(len(items), size):
        if any(items[i].key not in skip for i in b):
            yield b


@dataclass(frozen=True)
class Batch:
    """One attacked batch: dataset positions, clean images and labels (on the device), the
    attack's result, and when the batch started (``time.perf_counter()``)."""

    idx: list[int]
    x: torch.Tensor
    y: torch.Tensor
    result: AttackResult
    started: float

    def seconds_per_item(self) -> float:
        """Time since the batch started, shared by its items."""
        return (time.perf_counter() - self.started) / len(self.idx)


def attacked_batches(
    model: torch.nn.Module,
    data: Any,
    items: list[Item],
    attack: Attack,
    cfg: ClassifierDataConfig,
    skip: set[str],
    device: torch.device,
) -> Iterator[Batch]:
    """Each fixed batch that still holds an item not in ``skip``, attacked with a generator
    seeded by ``cfg.seed`` and the batch's first position."""
    for idx in todo_batches(items, cfg.batch_size, skip):
        started = time.perf_counter()
        x, y = data.x[idx].to(device), data.y[idx].to(device)
        res = attack(model, x, y, generator=image_generator(cfg.seed, idx[0]))
        yield Batch(idx, x, y, res, started)


def items_of(keys: list[str], names: list[str]) -> list[Item]:
    """Items from parallel key and name lists."""
    return [Item(k, n) for k, n in zip(keys, names, strict=True)]


class ClassifierDataConfig(CellConfig):
    """Settings every classifier experiment has: classifier, data, running."""

    model: Annotated[str, MODEL] = "digits-cnn"
    """Classifier: a zoo name (`advsr list classifiers`) or a model file."""
    weights: Annotated[str | None, WEIGHTS] = None
    """Weight file of a zoo classifier."""
    data: Annotated[str, DATA] = "digits-test"
    """Labelled dataset: digits, digits-test or a folder (class folders, _<label> names)."""
    pattern: str | None = None
    """File-name glob within the folder (e.g. 'cifar10_*')."""
    per_class: int | None = Field(None, ge=1)
    """The first N images of each class."""
    limit: int | None = Field(None, ge=1)
    """The first N images (of the correctly classified ones where the experiment uses those)."""
    seed: Annotated[int, SEEDED] = 0
    """Seed of random starts, input diversity and stochastic defenses."""
    random_weights: bool = False
    """Run a zoo model that has no weights untrained, initialised from the seed (refused
    without it); every table row of such a cell says "random weights"."""
    batch_size: Annotated[int, SEEDED] = Field(64, ge=1, le=MAX_BATCH)
    """Images per batch (part of the identity when something is random: it decides which
    images share a generator)."""


class ClassifierCellConfig(ClassifierDataConfig):
    """A classifier experiment with one attack (see :class:`ClassifierDataConfig`)."""

    attack: Annotated[str, ATTACK] = "pgd"
    """Attack name or name@budget (see `advsr list attacks`)."""
    eps: Annotated[float | None, ATTACK, BUDGET] = Field(8 / 255, ge=0.0)
    """Budget of an attack named without @ (ignored by minimal attacks)."""
    steps: Annotated[int | None, ATTACK] = Field(None, ge=1, le=MAX_STEPS)
    """Iterations of iterative attacks (default: the attack's)."""
    loss: Annotated[Literal["ce", "cw"] | None, ATTACK] = None
    """Objective of gradient attacks: ce or cw (default: the attack's)."""
    kappa: Annotated[float | None, ATTACK] = Field(None, ge=0.0)
    """Confidence of the C&W margin (default: the attack's)."""
    attack_options: Annotated[dict[str, Any], ATTACK] = Field(default_factory=dict)
    """Any other setting of the attack, e.g. overshoot=0.05."""
    probes: Annotated[Literal["full", "sample", "off"], NEUTRAL] = "sample"
    """Gradient-masking probes: sample (the cell's first 4 images), full (every image) or
    off (no probes and so no flags, said in every table)."""

    def probe_identity(self) -> dict[str, str]:
        """The probes' place in the identity: nothing for the default (a sample of what
        ``full`` probes, the rows' results unchanged), the mode otherwise."""
        return {} if self.probes == "sample" else {"probes": self.probes}

    def make_attack(self) -> Attack:
        """The configured attack of this cell."""
        return configured_attack(
            self.attack,
            self.eps,
            self.attack_options,
            explicit=self.model_fields_set,
            steps=self.steps,
            loss=self.loss,
            kappa=self.kappa,
        )


def check_targets(model: torch.nn.Module, attack: Attack | None) -> None:
    """Refuse a targeted attack asking for more target classes than the classifier has
    other classes (APGD-T's ``targets``), instead of running fewer without a word.

    Raises:
        InputError: ``targets`` above the classes less one.
    """
    classes = getattr(model, "num_classes", None)
    wanted = getattr(attack.settings, "targets", None) if attack is not None else None
    if isinstance(classes, int) and isinstance(wanted, int) and wanted > classes - 1:
        raise InputError(
            f"{attack.name if attack else 'the attack'} targets={wanted}: the classifier has "
            f"{classes} classes, so at most {classes - 1} targets (the others than the "
            "prediction)"
        )


def check_labels(model: torch.nn.Module, data: Any, device: torch.device | None = None) -> None:
    """Refuse labels beyond the classifier's classes (one line naming both); warn when the
    images are not the size the classifier was trained on, or when it gets at most twice
    chance of the first 64 images right (the wrong model for this data?).

    Raises:
        InputError: a label the model cannot predict.
    """
    classes = getattr(model, "num_classes", None)
    if isinstance(classes, int) and len(data.y) and int(data.y.max()) >= classes:
        raise InputError(f"labels of {data.name} exceed the {classes} classes of the model")
    size = getattr(model, "input_size", None)
    h, w = data.x.shape[-2:]
    if isinstance(size, int) and (h, w) != (size, size):
        warn(f"the classifier was trained on {size}x{size} images; {data.name} has {h}x{w}")
    if isinstance(classes, int) and len(data.y):
        x = data.x[:64].to(device or torch.device("cpu"))
        with torch.no_grad():
            hits = int((_bounded(model)(x).argmax(1).cpu() == data.y[: len(x)]).sum())
        if hits * classes <= 2 * len(x):
            warn(
                f"the classifier gets {100 * hits / len(x):.0f}% of the first {len(x)} images of "
                f"{data.name} right (chance: {100 / classes:.0f}%): is it the right model "
                "for this data?"
            )


def _bounded(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in micro-batches within the memory budget (:class:`MicroBatched`)."""
    return model if isinstance(model, MicroBatched) else MicroBatched(model)


def correctly_classified(
    model: torch.nn.Module, data: Any, limit: int | None, device: torch.device
) -> tuple[Any, float]:
    """The first ``limit`` images the model classifies correctly (all when None), in order,
    and the model's accuracy on the images scanned to find them.

    Raises:
        InputError: labels beyond the model's classes, or no image classified correctly.
    """
    check_labels(model, data, device)
    keep: list[int] = []
    scanned = 0
    run = _bounded(model)
    for start in range(0, len(data.names), 256):
        xb = data.x[start : start + 256].to(device)
        with torch.no_grad():
            ok = (run(xb).argmax(1).cpu() == data.y[start : start + 256]).nonzero()[:, 0]
        keep.extend(int(i) + start for i in ok)
        scanned = min(start + 256, len(data.names))
        if limit is not None and len(keep) >= limit:
            break
    accuracy = len(keep) / max(scanned, 1)
    keep = keep[:limit] if limit is not None else keep
    if not keep:
        raise InputError(f"the classifier gets none of the images of {data.name} right")
    return data.select(keep), accuracy
