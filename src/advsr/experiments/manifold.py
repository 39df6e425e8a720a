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

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advsr.attacks._loop import eval_mode
from advsr.checks import check_positive_int
from advsr.errors import InputError

__all__ = ["DetectorHead", "ManifoldResult", "penultimate_features", "run_manifold"]


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
    """Detector accuracy, clean-call rates and the 3-D PCA of its hidden features."""

    test_accuracy: float
    clean_called_clean: float
    adversarial_called_clean: float
    purified_called_clean: float
    explained_variance: list[float]
    points: dict[str, list[tuple[float, float, float]]]
    train_images: int
    test_images: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _pca3(groups: dict[str, torch.Tensor]) -> tuple[list[float], dict[str, torch.Tensor]]:
    allf = torch.cat(list(groups.values())).double()
    mean = allf.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(allf - mean, full_matrices=False)
    var = s**2
    explained = (var[:3] / var.sum()).tolist()
    return explained, {k: ((g.double() - mean) @ vh[:3].T).float() for k, g in groups.items()}


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
    g = torch.Generator().manual_seed(seed)
    train_img = torch.zeros(n, dtype=torch.bool)
    train_img[torch.randperm(n, generator=g)[: n // 2]] = True
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
    )
