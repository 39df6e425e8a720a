"""The ``defend`` experiment: accuracy of a defended classifier, non-adaptive and adaptive.

As in the defense papers, only images the bare classifier gets right are used (the first
``limit`` of them in dataset order). A cell is one (attack, budget, defense, mode):

* ``non-adaptive`` - the attack is crafted on the bare classifier (the papers' setting), then
  the defended classifier ``classifier o defense`` classifies the adversarial images;
* ``adaptive`` - the attack is crafted on the defended classifier itself, through
  :func:`advsr.defenses.adaptive.adaptive`: BPDA for non-differentiable defenses, EOT over
  ``eot`` draws for stochastic ones (Athalye et al. 2018).

Attack ``none`` gives the clean accuracy under the defense. Rows per image:
``defended_correct`` (the defended classifier is right on ``x_adv``: the defense "destroyed"
the attack), ``adv_correct`` (the bare classifier is right on ``x_adv``: the "No Defense"
column), ``l2`` and ``linf`` of ``x_adv - x``. Stochastic defenses are evaluated with one
draw from a generator seeded per image batch, independent of the attack's draws.

Non-adaptive adversarial examples do not depend on the defense, so a :class:`DefendSession`
computes them once per (attack, budget, batch) and reuses them for every defense.
"""

from __future__ import annotations

import statistics
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from pydantic import Field

from advsr.data.labelled import LabelledSet, open_labelled
from advsr.defenses.adaptive import adaptive, defend
from advsr.defenses.base import Defense
from advsr.defenses.registry import canonical_spec, create_defense
from advsr.devices import resolve_device
from advsr.errors import InputError
from advsr.experiments.attack_clf import (
    ClassifierCellConfig,
    check_attack_name,
    run_clf_attack,
)
from advsr.experiments.runner import CellResult, CellRow, run_cell
from advsr.experiments.spec import validate
from advsr.experiments.store import ResultStore
from advsr.io import file_sha256
from advsr.models.classifiers import create_classifier

__all__ = [
    "DefendConfig",
    "DefendSession",
    "attack_label",
    "correctly_classified",
    "summarise",
]

EXPERIMENT = "defend"
Mode = Literal["non-adaptive", "adaptive"]


class DefendConfig(ClassifierCellConfig):
    """Settings of one ``defend`` cell."""

    limit: int | None = Field(None, ge=1)
    attack: str = "none"
    eps: float | None = Field(None, ge=0.0)
    loss: Literal["ce", "cw"] = "ce"
    kappa: float = Field(0.0, ge=0.0)
    defense: str = "none"
    mode: Mode = "non-adaptive"
    eot: int = Field(10, ge=1)


def attack_label(attack: str, eps: float | None) -> str:
    """``fgsm-2/255``-style column label (L2 budgets as plain numbers)."""
    if attack == "none" or eps is None:
        return "clean" if attack == "none" else attack
    if attack in ("fgm-l2", "pgd-l2", "fpgap", "pgap"):
        return f"{attack}-{eps:g}"
    return f"{attack}-{eps * 255:g}/255"


def correctly_classified(
    model: torch.nn.Module, data: LabelledSet, limit: int | None, device: torch.device
) -> tuple[LabelledSet, float]:
    """The first ``limit`` images the model classifies correctly (all when None), in order,
    and the model's accuracy on the images scanned to find them."""
    keep: list[int] = []
    scanned = 0
    for start in range(0, len(data.names), 256):
        xb = data.x[start : start + 256].to(device)
        with torch.no_grad():
            ok = (model(xb).argmax(1).cpu() == data.y[start : start + 256]).nonzero()[:, 0]
        keep.extend(int(i) + start for i in ok)
        scanned = min(start + 256, len(data.names))
        if limit is not None and len(keep) >= limit:
            break
    accuracy = len(keep) / max(scanned, 1)
    keep = keep[:limit] if limit is not None else keep
    idx = torch.tensor(keep, dtype=torch.long)
    sub = replace(data, names=[data.names[i] for i in keep], x=data.x[idx], y=data.y[idx])
    return sub, accuracy


@dataclass
class _Prepared:
    model: torch.nn.Module
    data: LabelledSet  # the correctly classified images only
    clean_accuracy: float  # of the bare classifier on the images scanned to find them


class DefendSession:
    """Runs ``defend`` cells, sharing models, image selections and non-adaptive examples.

    Args:
        store: result store.
        progress: show progress bars (None: when stderr is a terminal).
        cache_bytes: memory budget of cached non-adaptive adversarial batches.
    """

    def __init__(
        self, store: ResultStore, *, progress: bool | None = None, cache_bytes: int = 1 << 30
    ) -> None:
        self.store = store
        self.progress = progress
        self._prepared: dict[tuple[Any, ...], _Prepared] = {}
        self._defenses: dict[tuple[str, str], Defense] = {}
        self._adv: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
        self._cache_bytes = cache_bytes

    # -- preparation ---------------------------------------------------------------------
    def prepare(self, cfg: DefendConfig) -> _Prepared:
        """Load the classifier and select the first ``limit`` correctly classified images."""
        key = (cfg.model, cfg.weights, cfg.data, cfg.pattern, cfg.per_class, cfg.limit, cfg.device)
        if key in self._prepared:
            return self._prepared[key]
        device = resolve_device(cfg.device)
        data = open_labelled(cfg.data, pattern=cfg.pattern, per_class=cfg.per_class)
        model = create_classifier(cfg.model, cfg.weights).to(device).eval()
        if int(data.y.max()) >= model.num_classes:
            raise InputError(
                f"labels of {cfg.data} exceed the {model.num_classes} classes of {cfg.model}"
            )
        sub, clean_accuracy = correctly_classified(model, data, cfg.limit, device)
        if not sub.names:
            raise InputError(f"{cfg.model} classifies none of the images of {cfg.data} correctly")
        prep = _Prepared(model, sub, clean_accuracy)
        self._prepared[key] = prep
        return prep

    def defense(self, cfg: DefendConfig) -> Defense | None:
        """The cell's defense (None for ``none``), built once per spec and device."""
        if cfg.defense == "none":
            return None
        key = (canonical_spec(cfg.defense), cfg.device)
        if key not in self._defenses:
            d = create_defense(cfg.defense)
            self._defenses[key] = d.to(resolve_device(cfg.device)).eval()
        return self._defenses[key]

    # -- attacks -------------------------------------------------------------------------
    def _non_adaptive(
        self, prep: _Prepared, cfg: DefendConfig, x: torch.Tensor, y: torch.Tensor, idx: list[int]
    ) -> torch.Tensor:
        key = (id(prep), cfg.attack, cfg.eps, cfg.steps, cfg.loss, cfg.kappa, cfg.seed, tuple(idx))
        if key in self._adv:
            self._adv.move_to_end(key)
            return self._adv[key]
        x_adv = run_clf_attack(prep.model, cfg, x, y, idx[0]).x_adv
        self._adv[key] = x_adv
        used = sum(t.numel() * t.element_size() for t in self._adv.values())
        while used > self._cache_bytes and len(self._adv) > 1:
            _, old = self._adv.popitem(last=False)
            used -= old.numel() * old.element_size()
        return x_adv

    def _rows(
        self, prep: _Prepared, cfg: DefendConfig, skip: set[str], device: torch.device
    ) -> Iterator[CellRow]:
        data = prep.data
        defense = self.defense(cfg)
        todo = [i for i, n in enumerate(data.names) if n not in skip]
        for start in range(0, len(todo), cfg.batch_size):
            t0 = time.perf_counter()
            idx = todo[start : start + cfg.batch_size]
            x, y = data.x[idx].to(device), data.y[idx].to(device)
            if cfg.attack == "none":
                x_adv = x
            elif cfg.mode == "non-adaptive" or defense is None:
                x_adv = self._non_adaptive(prep, cfg, x, y, idx)
            else:
                target = defend(prep.model, adaptive(defense, cfg.eot), seed=cfg.seed + idx[0])
                x_adv = run_clf_attack(target, cfg, x, y, idx[0]).x_adv
            judge = defend(prep.model, defense, seed=cfg.seed * 1_000_003 + idx[0] + 7919)
            with torch.no_grad():
                defended = judge.eval()(x_adv).argmax(1) == y
                bare = prep.model(x_adv).argmax(1) == y
            d = (x_adv - x).flatten(1)
            per = (time.perf_counter() - t0) / len(idx)
            for j, i in enumerate(idx):
                yield CellRow(
                    i,
                    data.names[i],
                    {
                        "defended_correct": float(defended[j]),
                        "adv_correct": float(bare[j]),
                        "l2": float(d[j].norm()),
                        "linf": float(d[j].abs().max()),
                    },
                    per,
                )

    def run(self, cfg: DefendConfig | dict[str, Any]) -> CellResult:
        """Run one cell with resume.

        Raises:
            AdvsrError: unknown attack, defense, model or dataset; bad settings.
        """
        if not isinstance(cfg, DefendConfig):
            cfg = validate(DefendConfig, cfg)
        minimal = check_attack_name(cfg.attack, extra=("none",))
        if not minimal and cfg.eps is None:
            raise InputError(f"{cfg.attack} needs a budget (eps)")
        defense = self.defense(cfg)  # validates the spec before any work
        prep = self.prepare(cfg)
        spec = canonical_spec(cfg.defense) if defense is not None else "none"
        adaptive_cell = cfg.mode == "adaptive" and defense is not None and cfg.attack != "none"
        config = {
            **cfg.model_dump(exclude={"weights", "device", "batch_size"}),
            "defense": spec,
            "mode": "adaptive" if adaptive_cell else "non-adaptive",
            "eps": None if minimal else cfg.eps,
            "eot": cfg.eot
            if adaptive_cell and defense is not None and defense.stochastic
            else None,
            "weights_sha256": file_sha256(cfg.weights) if cfg.weights else None,
        }
        device = resolve_device(cfg.device)
        return run_cell(
            self.store,
            EXPERIMENT,
            config,
            prep.data.names,
            lambda skip: self._rows(prep, cfg, skip, device),
            description=f"{attack_label(cfg.attack, cfg.eps)} vs {spec} ({config['mode']})",
            progress=self.progress,
        )


def summarise(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Defended accuracy (destruction rate), bare accuracy and perturbation sizes."""
    if not rows:
        return {}
    return {
        "images": float(len(rows)),
        "defended_accuracy": statistics.fmean(r["defended_correct"] for r in rows),
        "undefended_accuracy": statistics.fmean(r["adv_correct"] for r in rows),
        "l2_mean": statistics.fmean(r["l2"] for r in rows),
        "l2_median": statistics.median(r["l2"] for r in rows),
        "linf_max": max(r["linf"] for r in rows),
    }


def l2_curve(rows: list[dict[str, Any]], bins: int = 5) -> list[tuple[float, float]]:
    """Defense success rate against perturbation L2 (equal-count bins of the rows).

    Returns ``(mean L2 of the bin, fraction defended)`` pairs in increasing L2 (the first
    paper's curves for attacks whose per-image L2 varies, such as DeepFool).
    """
    ordered = sorted(rows, key=lambda r: r["l2"])
    n = len(ordered)
    out = []
    for b in range(min(bins, n)):
        part = ordered[b * n // min(bins, n) : (b + 1) * n // min(bins, n)]
        if part:
            out.append(
                (
                    statistics.fmean(r["l2"] for r in part),
                    statistics.fmean(r["defended_correct"] for r in part),
                )
            )
    return out


def run_defend(
    session: DefendSession,
    base: dict[str, Any],
    attacks: list[tuple[str, float | None]],
    defenses: list[str],
    modes: list[str],
) -> dict[str, Any]:
    """Every (mode, defense, attack) cell; the tables of the SR-defense paper and curves.

    Args:
        session: the session (store, caches).
        base: settings shared by every cell (model, data, limit, steps, eot, seed...).
        attacks: ``(name, eps)`` pairs (``eps`` None for minimal attacks).
        defenses: defense specs (``none``, the bare classifier, is always the first row).
        modes: ``non-adaptive`` and/or ``adaptive``.

    Returns:
        a JSON-ready document: per mode, one row per defense with the accuracy on clean images
        (``clean``) and under each attack (keyed by :func:`attack_label`); per attack with
        varying L2, the curves of defense success rate against L2 per defense.
    """
    for m in modes:
        if m not in ("non-adaptive", "adaptive"):
            raise InputError(f"unknown mode {m!r}; use non-adaptive or adaptive")
    specs = ["none", *[d for d in defenses if d != "none"]]
    cells = [("none", None), *attacks]
    doc: dict[str, Any] = {"tables": {}, "curves": {}}
    per_cell: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for mode in modes:
        rows = []
        for spec in specs:
            row: dict[str, Any] = {"defense": spec}
            for name, eps in cells:
                res = session.run(
                    {**base, "attack": name, "eps": eps, "defense": spec, "mode": mode}
                )
                label = attack_label(name, eps)
                per_cell[(mode, spec, label)] = res.rows
                row[label] = summarise(res.rows).get("defended_accuracy")
                if name != "none":
                    row[f"{label}:l2_median"] = summarise(res.rows).get("l2_median")
            rows.append(row)
        doc["tables"][mode] = {"columns": [attack_label(n, e) for n, e in cells], "rows": rows}
    prep = session.prepare(validate(DefendConfig, {**base}))
    doc["images"] = len(prep.data.names)
    doc["clean_accuracy_bare"] = prep.clean_accuracy
    for mode in modes:
        curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for attack in ("fgsm", "ifgsm", "bim", "deepfool"):
            chosen = [(n, e) for n, e in attacks if n == attack]
            if not chosen:
                continue
            curves[attack] = {}
            for spec in specs:
                if attack == "deepfool":
                    pts = l2_curve(per_cell[(mode, spec, attack_label(*chosen[0]))])
                else:
                    pts = []
                    for n, e in chosen:
                        s = summarise(per_cell[(mode, spec, attack_label(n, e))])
                        pts.append(
                            (float(s["l2_mean"] or 0.0), float(s["defended_accuracy"] or 0.0))
                        )
                curves[attack][spec] = sorted(pts)
        doc["curves"][mode] = curves
    return doc


def write_defend_report(doc: dict[str, Any], path: str | Any) -> Any:
    """The HTML report of :func:`run_defend`: accuracy tables per mode and L2 curves."""
    from advsr.report import Plot, ReportTable, write_report

    tables = []
    for mode, t in doc["tables"].items():
        header = ["defense", *t["columns"]]
        body = [
            [r["defense"], *("-" if r[c] is None else f"{100 * r[c]:.1f}" for c in t["columns"])]
            for r in t["rows"]
        ]
        tables.append(ReportTable(f"top-1 accuracy (%) under attack, {mode}", header, body))
    plots = [
        Plot(
            f"{attack}, {mode}",
            "perturbation L2",
            "defense success rate",
            [(spec, pts) for spec, pts in per_spec.items()],
        )
        for mode, curves in doc["curves"].items()
        for attack, per_spec in curves.items()
    ]
    intro = (
        f"{doc.get('model')} on {doc.get('data')}: {doc['images']} correctly classified images "
        f"(bare clean accuracy {100 * doc['clean_accuracy_bare']:.1f}% on the images scanned). "
        "Non-adaptive: attacks crafted on the bare classifier. Adaptive: crafted on "
        "classifier o defense with BPDA (non-differentiable defenses) and EOT (stochastic ones)."
    )
    return write_report(path, "advsr defend", intro, tables, [], plots)
