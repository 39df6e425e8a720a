"""The manifold experiment of the SR-defense paper (Mustafa et al. 2019, sec. 4.1).

Claim under test: adversarial images lie off the natural-image manifold, and purification
(super-resolution) maps them back. Procedure:

1. Take images the classifier gets right and craft adversarial versions with a list of
   attacks (the paper mixes all its attacks); split the images in two halves (seeded) for
   training and testing.
2. Features: the frozen classifier's penultimate activations (the input of its last linear
   layer, i.e. the global-average-pooled features of a ResNet).
3. Detector: the paper's head on those features - batch normalisation, dropout 0.5, a dense
   layer (1024 units, ReLU) and a single logit - trained with Adam on clean (label 0) vs
   adversarial (label 1) training features. The paper fine-tunes Inception-v3's top two
   blocks as well; here the classifier stays frozen (the issue's setting), so only the head
   learns.
4. Report its test accuracy (balanced: the mean of the clean and adversarial recall, the
   classes being weighted equally in training too, since several attacks give several
   adversarial images per clean one), the fraction of adversarial test images it calls
   clean, and the fraction of *purified* adversarial test images (a defense spec, default SR
   purification) it calls clean - the paper's 91% for EDSR on ImageNet.
5. PCA to 3 components of the detector's hidden layer (1024-d) for clean, adversarial and
   purified test images (the paper's Fig. 1), with the explained variance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from advsr.attacks.base import Attack
from advsr.checks import check_positive_int
from advsr.engine.attack_cells import ClassifierDataConfig, configured_attack, image_generator
from advsr.engine.cell import (
    ATTACK,
    MAX_BATCH,
    MAX_STEPS,
    SEEDED,
    CellRow,
    CellRun,
    Experiment,
    Item,
    Plan,
    ReportParts,
    cell_identity,
    register_experiment,
)
from advsr.engine.context import Context
from advsr.engine.store import ResultStore
from advsr.errors import InputError
from advsr.modes import eval_mode
from advsr.report import ReportTable, Scatter3D

__all__ = [
    "DetectorHead",
    "ManifoldConfig",
    "ManifoldResult",
    "penultimate_features",
    "run_manifold",
    "train_split",
]


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise InputError("the classifier has no linear layer whose input could serve as features")
    return last


def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The input of the classifier's last linear layer, for every image (no gradient).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, D)``.
    """
    layer = _last_linear(model)
    grabbed: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: grabbed.append(i[0].detach()))
    try:
        with eval_mode(model), torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                model(x[s : s + batch_size])
    finally:
        handle.remove()
    return torch.cat(grabbed).flatten(1)


class DetectorHead(nn.Module):
    """BN -> dropout -> dense (ReLU) -> one logit (the paper's head on pooled features).

    Shape:
        ``(N, D)`` -> ``(N,)`` logits; :meth:`hidden` gives ``(N, hidden)``.
    """

    def __init__(self, dim: int, hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm1d(dim), nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU()
        )
        self.out = nn.Linear(hidden, 1)

    def hidden(self, f: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activations (the features the paper's Fig. 1 projects)."""
        return self.body(f)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(f))[:, 0]


def train_detector(
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    *,
    epochs: int = 200,
    lr: float = 1e-3,
    hidden: int = 1024,
    batch_size: int = 256,
    seed: int = 0,
) -> DetectorHead:
    """Train the head on clean (0) vs adversarial (1) features with Adam and BCE.

    Shape:
        ``(Nc, D)``, ``(Na, D)`` -> a head in eval mode.
    """
    check_positive_int(epochs, "epochs")
    f = torch.cat([clean, adversarial])
    t = torch.cat([torch.zeros(len(clean)), torch.ones(len(adversarial))]).to(f.device)
    g = torch.Generator().manual_seed(seed)
    # several attacks give several adversarial rows per clean one: weigh the classes equally
    balance = torch.tensor(len(clean) / max(len(adversarial), 1), device=f.device)
    # initial weights and dropout masks come from the global RNG: seed it inside a fork so
    # the caller's RNG state is left as it was
    with torch.random.fork_rng(devices=[f.device] if f.device.type == "cuda" else []):
        torch.manual_seed(seed)
        head = DetectorHead(f.shape[1], hidden).to(f.device)
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        head.train()
        for _ in range(epochs):
            order = torch.randperm(len(f), generator=g).to(f.device)
            for s in range(0, len(f), batch_size):
                idx = order[s : s + batch_size]
                if len(idx) < 2:
                    continue
                loss = nn.functional.binary_cross_entropy_with_logits(
                    head(f[idx]), t[idx], pos_weight=balance
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
    return head.eval()


@dataclass(frozen=True)
class ManifoldResult:
    """Detector accuracy, clean-call rates and the 3-D PCA of its hidden features.

    ``per_image`` has one entry per test image (``index`` into the clean set): whether the
    detector calls the clean image clean, the fraction of its adversarial and purified
    versions (one per attack) it calls clean, and the PCA coordinates of each.
    """

    test_accuracy: float
    clean_called_clean: float
    adversarial_called_clean: float
    purified_called_clean: float
    explained_variance: list[float]
    points: dict[str, list[tuple[float, float, float]]]
    train_images: int
    test_images: int
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (without the per-image entries)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "per_image"}


def _pca3(groups: dict[str, torch.Tensor]) -> tuple[list[float], dict[str, torch.Tensor]]:
    allf = torch.cat(list(groups.values())).double()
    mean = allf.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(allf - mean, full_matrices=False)
    var = s**2
    explained = (var[:3] / var.sum()).tolist()
    return explained, {k: ((g.double() - mean) @ vh[:3].T).float() for k, g in groups.items()}


def train_split(n: int, seed: int) -> torch.Tensor:
    """Which of ``n`` images train the detector (a seeded half); the others test it.

    Shape:
        ``(n,)`` bool.
    """
    train_img = torch.zeros(n, dtype=torch.bool)
    train_img[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: n // 2]] = True
    return train_img


def run_manifold(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    purified: torch.Tensor,
    *,
    seed: int = 0,
    epochs: int = 200,
    hidden: int = 1024,
    plot_points: int = 300,
) -> ManifoldResult:
    """Train and evaluate the detector (see the module docstring).

    Args:
        model: the frozen classifier.
        x: clean images (correctly classified).
        x_adv: their adversarial versions (several attacks may be stacked: the rows of
            ``x_adv`` are paired with those of ``x`` by ``index % len(x)``).
        purified: the defense applied to ``x_adv`` (same rows).
        seed: split, initialisation and batch order.

    Shape:
        ``(N, 3, H, W)``, ``(M, 3, H, W)`` x2 -> :class:`ManifoldResult`.
    """
    n = x.shape[0]
    if n < 4:
        raise InputError(f"the manifold experiment needs at least 4 images, got {n}")
    if x_adv.shape[0] % n or purified.shape[0] != x_adv.shape[0]:
        raise InputError("adversarial and purified images must be k copies of the clean set")
    train_img = train_split(n, seed)
    rows = torch.arange(x_adv.shape[0]) % n
    fc, fa = penultimate_features(model, x), penultimate_features(model, x_adv)
    fp = penultimate_features(model, purified)
    tr_a, te_a = train_img[rows], ~train_img[rows]
    head = train_detector(fc[train_img], fa[tr_a], epochs=epochs, hidden=hidden, seed=seed)
    with torch.no_grad():
        p_clean = head(fc[~train_img]) < 0
        p_adv = head(fa[te_a]) < 0
        p_pur = head(fp[te_a]) < 0
        acc = 0.5 * (p_clean.float().mean() + (~p_adv).float().mean())  # balanced
        hidden_feats = {
            "clean": head.hidden(fc[~train_img]),
            "adversarial": head.hidden(fa[te_a]),
            "purified": head.hidden(fp[te_a]),
        }
    explained, proj = _pca3(hidden_feats)
    per_image = _per_image(train_img, rows[te_a], p_clean, p_adv, p_pur, proj)
    points = {
        k: [tuple(float(c) for c in row) for row in v[:plot_points].tolist()]
        for k, v in proj.items()
    }
    return ManifoldResult(
        test_accuracy=float(acc),
        clean_called_clean=float(p_clean.float().mean()),
        adversarial_called_clean=float(p_adv.float().mean()),
        purified_called_clean=float(p_pur.float().mean()),
        explained_variance=explained,
        points=points,  # type: ignore[arg-type]
        train_images=int(train_img.sum()),
        test_images=int((~train_img).sum()),
        per_image=per_image,
    )


def _per_image(
    train_img: torch.Tensor,
    adv_rows: torch.Tensor,
    p_clean: torch.Tensor,
    p_adv: torch.Tensor,
    p_pur: torch.Tensor,
    proj: dict[str, torch.Tensor],
) -> list[dict[str, Any]]:
    """Regroup the test predictions and PCA points by clean image."""
    test = (~train_img).nonzero()[:, 0].tolist()
    owner = adv_rows.tolist()  # the clean image of each adversarial test row
    out = []
    for t, i in enumerate(test):
        mine = [r for r, o in enumerate(owner) if o == i]
        out.append(
            {
                "index": i,
                "clean_called_clean": float(p_clean[t]),
                "adv_called_clean": float(p_adv[mine].float().mean()),
                "purified_called_clean": float(p_pur[mine].float().mean()),
                "pca_clean": proj["clean"][t].tolist(),
                "pca_adversarial": proj["adversarial"][mine].tolist(),
                "pca_purified": proj["purified"][mine].tolist(),
            }
        )
    return out


# ------------------------------------------------------------------------------ the cell

NAME = "manifold"
QUANTITIES = (
    "test_accuracy",
    "clean_called_clean",
    "adversarial_called_clean",
    "purified_called_clean",
)


class ManifoldConfig(ClassifierDataConfig):
    """Settings of a ``manifold`` cell: the first ``limit`` correctly classified images, the
    ``attacks`` making the adversarial set (``name@budget``), the purification ``defense``,
    the detector's training ``epochs`` and ``hidden`` width; ``seed`` picks the split."""

    limit: int | None = Field(400, ge=4)
    """The first N correctly classified images (half train the detector, half test it)."""
    attacks: Annotated[list[str], ATTACK] = Field(
        default_factory=lambda: ["fgsm@8/255", "pgd@8/255", "deepfool"], min_length=1
    )
    """The attacks making the adversarial set (name@budget)."""
    steps: Annotated[int | None, ATTACK] = Field(None, ge=1, le=MAX_STEPS)
    """Iterations of iterative attacks (default: the attack's)."""
    defense: str = "sr:output=input"
    """Purification applied to the adversarial images (a defense spec)."""
    epochs: int = Field(200, ge=1, le=100_000)
    """Detector training epochs."""
    hidden: int = Field(1024, ge=1, le=65_536)
    """Width of the detector's hidden layer."""
    batch_size: Annotated[int, SEEDED] = Field(128, ge=1, le=MAX_BATCH)
    """Images per attack batch (decides which images share a generator)."""


def _plan(cfg: ManifoldConfig, ctx: Context) -> Plan:
    from advsr.defenses.registry import defense_identity, defense_label
    from advsr.experiments.defend import select_correct

    attacks = [configured_attack(spec, None, steps=cfg.steps) for spec in cfg.attacks]
    for a in attacks:
        if a.entry.domain != "classifier":
            raise InputError(
                f"{a.name} is an SR attack; the manifold experiment needs classifier ones"
            )
    device = ctx.device(cfg.device)
    ctx.defense(cfg.defense, device)
    data, _ = select_correct(cfg, ctx)
    if len(data.names) < 4:
        raise InputError(f"only {len(data.names)} correctly classified images in {cfg.data}")
    test = (~train_split(len(data.names), cfg.seed)).nonzero()[:, 0].tolist()
    items = [(i, data.keys[i], data.names[i]) for i in test]

    extra = {
        "attacks": [a.identity() for a in attacks],
        "defense": defense_identity(cfg.defense),
    }

    def compute(skip: set[str]) -> Iterator[CellRow]:
        yield from _rows(ctx, data, attacks, cfg, device)

    return Plan(
        cfg,
        cell_identity(cfg, ctx, version=MANIFOLD.version, stochastic=True, extra=extra),
        [Item(k, n) for _, k, n in items],
        compute,
        "manifold detector",
        {
            "attacks": [a.label for a in attacks],
            "images": len(data.names),
            "defense": defense_label(cfg.defense),
        },
    )


def _rows(
    ctx: Context, data: Any, attacks: list[Attack], cfg: ManifoldConfig, device: torch.device
) -> Iterator[CellRow]:
    import time

    t0 = time.perf_counter()
    clf = ctx.classifier(cfg.model, cfg.weights, device, cfg.init_seed)
    purifier = ctx.defense(cfg.defense, device)
    x, y = data.x.to(device), data.y.to(device)
    advs, purified = [], []
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    b = cfg.batch_size
    for attack in attacks:
        xa = torch.cat(
            [
                attack(
                    clf, x[s : s + b], y[s : s + b], generator=image_generator(cfg.seed, s)
                ).x_adv
                for s in range(0, len(x), b)
            ]
        )
        advs.append(xa)
        with torch.no_grad():
            purified.append(torch.cat([purifier(xa[s : s + b], gen) for s in range(0, len(xa), b)]))
    res = run_manifold(
        clf,
        x,
        torch.cat(advs),
        torch.cat(purified),
        seed=cfg.seed,
        epochs=cfg.epochs,
        hidden=cfg.hidden,
    )
    per = (time.perf_counter() - t0) / max(len(res.per_image), 1)
    for r in res.per_image:
        i = r.pop("index")
        metrics = {**r, "explained_variance": res.explained_variance}
        yield CellRow(i, data.keys[i], data.names[i], metrics, per)


def summarise(cells: list[CellRun], store: ResultStore | None = None) -> dict[str, Any]:
    """Per cell: the detector's balanced test accuracy, the called-clean rates and the PCA
    points (from the stored test rows)."""
    out = []
    for c in cells:
        rows = c.rows
        mean = {
            k: sum(r[k] for r in rows) / len(rows)
            for k in ("clean_called_clean", "adv_called_clean", "purified_called_clean")
        }
        out.append(
            {
                "cell_id": c.cell_id,
                "model": c.shown["model"],
                "data": c.shown["data"],
                "attacks": c.info["attacks"],
                "defense": c.info.get("defense", c.config["defense"]),
                "images": c.info["images"],
                "test_images": len(rows),
                "test_accuracy": 0.5 * (mean["clean_called_clean"] + 1 - mean["adv_called_clean"]),
                "clean_called_clean": mean["clean_called_clean"],
                "adversarial_called_clean": mean["adv_called_clean"],
                "purified_called_clean": mean["purified_called_clean"],
                "explained_variance": rows[0]["explained_variance"] if rows else [],
                "points": {
                    "clean": [r["pca_clean"] for r in rows],
                    "adversarial": [p for r in rows for p in r["pca_adversarial"]],
                    "purified": [p for r in rows for p in r["pca_purified"]],
                },
                "expected": c.expected,
                "stored": c.stored,
                "computed": c.computed,
            }
        )
    return {"experiment": NAME, "cells": out}


def tables(doc: dict[str, Any]) -> list[ReportTable]:
    """The detector's quantities per cell."""
    return [
        ReportTable(
            f"{c['model']} on {c['data']}, attacks {', '.join(c['attacks'])}, purification "
            f"{c['defense']} (BN-dropout-{'dense'}-1 head on frozen features)",
            ["quantity", "value"],
            [[k, f"{c[k]:.4f}"] for k in QUANTITIES],
        )
        for c in doc["cells"]
    ]


def report(
    doc: dict[str, Any], cells: list[CellRun], store: ResultStore | None = None
) -> ReportParts:
    """The table and the 3-D PCA scatter of the detector's hidden features (Fig. 1)."""
    plots = []
    for c in doc["cells"]:
        ev = ", ".join(f"{v:.2f}" for v in c["explained_variance"])
        groups = [(k, [tuple(p) for p in v[:300]]) for k, v in c["points"].items()]
        plots.append(Scatter3D(f"PCA of detector features (explained variance {ev})", groups))
    intro = "; ".join(
        f"{c['model']} on {c['data']}: {c['images']} images ({c['test_images']} test)"
        for c in doc["cells"]
    )
    return ReportParts("advsr manifold", intro, tables(doc), plots)


MANIFOLD = register_experiment(
    Experiment(
        name=NAME,
        config=ManifoldConfig,
        plan=_plan,
        summarise=summarise,
        tables=tables,
        report=report,
        description="clean-vs-adversarial detector on frozen features (SR-defense paper 4.1)",
    )
)
