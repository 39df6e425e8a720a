"""Run a leaderboard: every measurement is an experiment cell in the result store.

For each scale of the protocol and each entry that runs there (:mod:`.entries`):

* ``eval-sr``: clean Y-PSNR / SSIM against HR (8-bit output, border = scale);
* ``attack-sr``: the basic attack at every budget of the protocol (LR PSNR, SR PSNR against
  the clean SR output in RGB and Y, SR PSNR against HR), the universal attack and APGD-SR;
* ``transfer``: for each ordered pair of different entries, the basic attack crafted on one
  and measured on the other (one cell per pair, so a new entry adds only the cells that
  involve it; the matrix's diagonal is the white-box ``attack-sr`` cell at that budget).

Every cell is planned (validated) before any runs; finished cells are read back from the
store, so a second run computes nothing and a new entry computes only its own cells. The
document (:func:`build_leaderboard`) is made from the stored rows alone, plus the image
strips of the pages (the attack cell's stored figure, or one image recomputed when the cell
was stored without it).

Example:
    >>> from advsr.engine.store import ResultStore
    >>> from advsr.leaderboard.entries import Entry
    >>> from advsr.leaderboard.protocol import get_protocol
    >>> p = get_protocol("v1", quick=True).with_scales([2])
    >>> lb = build_leaderboard(p, [Entry("bicubic", "bicubic")], "samples",
    ...                        ResultStore(":memory:"), progress=False)
    >>> row = lb.doc["rows"][0]
    >>> row["entry"], row["rank"], sorted(row["basic"]), row["score"] > 30
    ('bicubic', 1, ['2/255', '8/255'], True)
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advsr.engine.backend import Backend
from advsr.engine.cell import CellRun
from advsr.engine.context import Context
from advsr.engine.driver import run_plans
from advsr.engine.plan import plan_cells
from advsr.engine.store import ResultStore
from advsr.leaderboard.entries import Entry
from advsr.leaderboard.protocol import Protocol
from advsr.leaderboard.score import headline_score, rank_rows
from advsr.provenance import provenance
from advsr.report import ReportTable, fmt

__all__ = [
    "SCORE_DEFINITION",
    "STRIP_CAPTIONS",
    "Leaderboard",
    "Tag",
    "build_leaderboard",
    "leaderboard_cells",
    "leaderboard_tables",
    "page_name",
    "strip_images",
]

SCORE_DEFINITION = (
    "mean over the basic attack's budgets of the SR PSNR (dB, RGB) between the SR output of "
    "the attacked input and that of the clean input; higher = more robust"
)
STRIP_CAPTIONS = ("LR", "attacked LR", "perturbation (amplified)", "clean SR", "attacked SR")
STRIP_SIZE = 192
"""Displayed side of each strip image (pixels): crops upscaled by nearest neighbour."""
STRIP_CROP = 48
"""Side of the LR crop shown in the strips (LR pixels; the SR crop is ``scale`` times it)."""


@dataclass(frozen=True)
class Tag:
    """What a cell measures for the leaderboard: ``kind`` (clean, basic, universal, apgd,
    transfer), the entry, the scale, the budget (1/255 units) and a transfer's target."""

    kind: str
    entry: str
    scale: int
    alpha: int = 0
    target: str = ""


@dataclass(frozen=True)
class Leaderboard:
    """A built leaderboard.

    Attributes:
        doc: the JSON document (protocol, ranked rows, transfer matrices, provenance).
        strips: per ``(entry, scale)``, the image strip as ``(caption, PNG bytes)``.
    """

    doc: dict[str, Any]
    strips: dict[tuple[str, int], list[tuple[str, bytes]]]


def page_name(entry: str) -> str:
    """The file name of an entry's page: ``models/<safe name>.html``.

    Example:
        >>> page_name("demo-edsr"), page_name("my model.v2")
        ('models/demo-edsr.html', 'models/my_model.v2.html')
    """
    return f"models/{re.sub(r'[^A-Za-z0-9._-]+', '_', entry).strip('.') or 'model'}.html"


def _label(alpha: int) -> str:
    return f"{alpha}/255"


def leaderboard_cells(
    protocol: Protocol,
    entries: Sequence[Entry],
    data: str,
    *,
    device: str = "auto",
    show: Mapping[int, str] | None = None,
) -> list[tuple[Tag, tuple[str, dict[str, Any]]]]:
    """Every cell of a leaderboard with what it measures (see the module docstring).

    Args:
        protocol: the protocol (budgets, steps, reference, scales, crops).
        entries: the entries; those missing at a scale get no cells there.
        data: the dataset (name or path).
        device: the cells' device (not part of their identity).
        show: per scale, the image whose figure the basic attack at the transfer budget
            keeps (for the pages' strips).
    """
    cells: list[tuple[Tag, tuple[str, dict[str, Any]]]] = []
    common = {"steps": protocol.steps, "reference": protocol.reference}
    for s in protocol.scales:
        base = {"data": data, "scale": s, "hr_crop": protocol.hr_crop, "device": device}
        here = [e for e in entries if e.missing_at(s) is None]
        for e in here:
            model = {"model": e.model, "weights": e.weights_at(s)}
            cells.append((Tag("clean", e.name, s), ("eval-sr", {**base, **model})))
            for a in protocol.alphas:
                shown = [show[s]] if show and s in show and a == protocol.transfer_alpha else []
                cfg = {**base, **model, **common, "attack": "basic", "eps": a / 255}
                cells.append((Tag("basic", e.name, s, a), ("attack-sr", {**cfg, "show": shown})))
            u, g = protocol.universal_alpha, protocol.apgd_alpha
            uni = {**base, **model, **common, "attack": "universal", "eps": u / 255}
            cells.append((Tag("universal", e.name, s, u), ("attack-sr", uni)))
            apgd = {**base, **model, **common, "attack": protocol.apgd_attack, "eps": g / 255}
            cells.append((Tag("apgd", e.name, s, g), ("attack-sr", apgd)))
        t = protocol.transfer_alpha
        for src in here:
            for tgt in here:
                if src is tgt:
                    continue
                files = {x.model: x.weights_at(s) for x in (src, tgt) if x.weights_at(s)}
                cfg = {
                    **base,
                    **common,
                    "source": src.model,
                    "targets": [tgt.model],
                    "weights": files,
                    "eps": t / 255,
                }
                cells.append((Tag("transfer", src.name, s, t, tgt.name), ("transfer", cfg)))
    return cells


def _means(run: CellRun | None) -> dict[str, float] | None:
    """A finished cell's mean PSNRs (dB); None when the cell is missing or unfinished."""
    if run is None or not run.finished:
        return None
    return {k: v for k, v in run.mean.items() if "psnr" in k}


def _first_images(protocol: Protocol, data: str, ctx: Context) -> dict[int, tuple[str, str]]:
    """The name and key of the dataset's first image at each scale (the strips show it)."""
    out = {}
    for s in protocol.scales:
        ds = ctx.sr_dataset(data, s, protocol.hr_crop)
        out[s] = (ds.names()[0], ds.keys()[0])
    return out


def build_leaderboard(
    protocol: Protocol,
    entries: Sequence[Entry],
    data: str,
    store: ResultStore,
    *,
    device: str = "auto",
    command: str | None = None,
    progress: bool | None = None,
    backend: Backend | None = None,
    label: str | None = None,
) -> Leaderboard:
    """Run (or read back) every cell of the leaderboard and build its document.

    Args:
        protocol: the protocol (:func:`advsr.leaderboard.protocol.get_protocol`).
        entries: the entries (:func:`advsr.leaderboard.entries.parse_entries`).
        data: the dataset (name or path).
        store: the result store (the only place rows are written).
        device: auto, cpu, cuda, cuda:N.
        command: the command line, for the provenance block.
        progress: progress bars (None: when stderr is a terminal).
        backend: where the cells run (None: here).
        label: how pages name the dataset (default: ``data``).

    Raises:
        AdvsrError: an invalid cell (bad data, weights that do not load), before any work.
    """
    import advsr

    ctx = Context()
    dev = ctx.device(device)
    show = _first_images(protocol, data, ctx)
    shown = {s: name for s, (name, _) in show.items()}
    tagged = leaderboard_cells(protocol, entries, data, device=device, show=shown)
    plans = plan_cells([cell for _, cell in tagged], ctx)  # every cell valid before any work
    runs = run_plans(plans, store, progress=progress, backend=backend)
    by_tag = {tag: run for (tag, _), run in zip(tagged, runs, strict=True)}

    facts = _entry_facts(entries, protocol, ctx, dev)
    prov = _provenance(
        protocol, entries, data, label, facts, runs, ctx, command=command, device=device
    )
    common = {
        "protocol": protocol.label,
        "advsr_version": advsr.__version__,
        "date": prov["date"][:10],
    }
    rows: list[dict[str, Any]] = []
    for s in protocol.scales:
        scale_rows = [_row(e, s, protocol, by_tag, facts[e.name], common) for e in entries]
        rows += rank_rows(scale_rows)
    doc = _document(protocol, entries, data, label, ctx, rows, by_tag, show, prov, runs)
    strips = {
        (e.name, s): _strip(e, s, protocol, data, by_tag, store, ctx, dev, show[s][1])
        for s in protocol.scales
        for e in entries
        if e.missing_at(s) is None
    }
    return Leaderboard(doc, strips)


def _provenance(
    protocol: Protocol,
    entries: Sequence[Entry],
    data: str,
    label: str | None,
    facts: Mapping[str, Mapping[str, Any]],
    runs: Sequence[CellRun],
    ctx: Context,
    *,
    command: str | None,
    device: str,
) -> dict[str, Any]:
    """The document's provenance block: the protocol, the data, each entry's model and
    weights, and the models, files and settings of the cells that ran."""
    prov = provenance(
        command=command,
        config={
            "protocol": protocol.describe(),
            "data": ctx.data_identity(data),
            "entries": [
                {"name": e.name, "model": ctx.model_identity(e.model), "weights": f["weights"]}
                for e, f in zip(entries, facts.values(), strict=True)
            ],
        },
        data={"spec": data, "label": label or data, **ctx.data_identity(data)},
        weights={f"{e} x{s}": sha for e, f in facts.items() for s, sha in f["weights"].items()},
        device=device,
    )
    from advsr.provenance import of_cells

    cells_prov = of_cells(runs)  # every model with its weight file, sha256 and parameters
    prov.update({k: cells_prov[k] for k in ("models", "files", "settings")})
    return prov


def _document(
    protocol: Protocol,
    entries: Sequence[Entry],
    data: str,
    label: str | None,
    ctx: Context,
    rows: list[dict[str, Any]],
    by_tag: Mapping[Tag, CellRun],
    show: Mapping[int, tuple[str, str]],
    prov: dict[str, Any],
    runs: Sequence[CellRun],
) -> dict[str, Any]:
    """The leaderboard document (:attr:`Leaderboard.doc`) from its ranked rows, the stored
    cells and the provenance block."""
    return {
        "leaderboard": "advsr SR robustness leaderboard",
        "protocol": protocol.describe(),
        "score": SCORE_DEFINITION,
        "data": {"spec": data, "label": label or data, **ctx.data_identity(data)},
        "entries": [
            {
                "name": e.name,
                "model": e.model,
                "page": page_name(e.name),
                "missing": {f"x{s}": e.missing_at(s) for s in protocol.scales if e.missing_at(s)},
            }
            for e in entries
        ],
        "rows": rows,
        "transfer": [_transfer(protocol, entries, s, by_tag) for s in protocol.scales],
        "figure_images": {f"x{s}": name for s, (name, _) in show.items()},
        "provenance": prov,
        "cells": len(runs),
        "computed": sum(r.computed for r in runs),
        "from_store": sum(r.from_store for r in runs),
    }


def _entry_facts(
    entries: Sequence[Entry], protocol: Protocol, ctx: Context, dev: torch.device
) -> dict[str, dict[str, Any]]:
    """Per entry: parameter count and weights SHA-256 at each scale it runs at."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        params: dict[int, int] = {}
        weights: dict[int, str | None] = {}
        for s in protocol.scales:
            if e.missing_at(s) is not None:
                continue
            model = ctx.sr_model(e.model, s, e.weights_at(s), dev)
            params[s] = sum(p.numel() for p in model.parameters())
            f = e.weight_file(s)
            weights[s] = ctx.file_hash(f) if f is not None else None
        out[e.name] = {"params": params, "weights": weights}
    return out


def _row(
    e: Entry,
    s: int,
    protocol: Protocol,
    by_tag: Mapping[Tag, CellRun],
    facts: Mapping[str, Any],
    common: Mapping[str, Any],
) -> dict[str, Any]:
    """One entry at one scale: its clean fidelity, its attack means and its score."""
    clean = by_tag.get(Tag("clean", e.name, s))
    cm = clean.mean if clean is not None and clean.finished else None
    basic = {_label(a): _means(by_tag.get(Tag("basic", e.name, s, a))) for a in protocol.alphas}
    sr = {k: (v or {}).get("sr_psnr") for k, v in basic.items()}
    return {
        "entry": e.name,
        "model": e.model,
        "scale": s,
        "missing": e.missing_at(s),
        "score": headline_score(sr, [_label(a) for a in protocol.alphas]),
        "clean": None if cm is None else {"psnr_y": cm.get("psnr"), "ssim_y": cm.get("ssim")},
        "basic": basic,
        "universal": _means(by_tag.get(Tag("universal", e.name, s, protocol.universal_alpha))),
        "apgd": _means(by_tag.get(Tag("apgd", e.name, s, protocol.apgd_alpha))),
        "params": facts["params"].get(s),
        "weights_sha256": facts["weights"].get(s),
        "page": page_name(e.name),
        **common,
    }


def _transfer(
    protocol: Protocol, entries: Sequence[Entry], s: int, by_tag: Mapping[Tag, CellRun]
) -> dict[str, Any]:
    """The source x target matrix at one scale: mean SR PSNR (dB, RGB) on the target of
    attacks crafted on the source; the diagonal is the white-box attack."""
    t = protocol.transfer_alpha
    here = [e for e in entries if e.missing_at(s) is None]
    matrix: list[list[float | None]] = []
    for src in here:
        row: list[float | None] = []
        for tgt in here:
            if src is tgt:
                m = _means(by_tag.get(Tag("basic", src.name, s, t)))
                row.append(None if m is None else m.get("sr_psnr"))
                continue
            run = by_tag.get(Tag("transfer", src.name, s, t, tgt.name))
            row.append(run.mean.get(f"sr_psnr@{tgt.model}") if run and run.finished else None)
        matrix.append(row)
    names = [e.name for e in here]
    return {"scale": s, "alpha": _label(t), "sources": names, "targets": names, "matrix": matrix}


def leaderboard_tables(doc: Mapping[str, Any]) -> list[ReportTable]:
    """The ranking as terminal tables, one per scale (model, rank, score, clean fidelity, the
    SR PSNR at each budget, universal and APGD-SR, parameters)."""
    p = doc["protocol"]
    out = []
    for s in p["scales"]:
        body = []
        for r in (r for r in doc["rows"] if r["scale"] == s):
            basic = r["basic"]
            body.append(
                [
                    r["entry"],
                    fmt(r["rank"]),
                    fmt(r["score"], 2),
                    fmt((r["clean"] or {}).get("psnr_y"), 2),
                    *(fmt((basic.get(a) or {}).get("sr_psnr"), 2) for a in p["alphas"]),
                    fmt((r["universal"] or {}).get("sr_psnr"), 2),
                    fmt((r["apgd"] or {}).get("sr_psnr"), 2),
                    fmt(r["params"]),
                ]
            )
        out.append(
            ReportTable(
                f"SR robustness leaderboard {p['label']}, x{s}: score = mean SR PSNR (dB, RGB, "
                "attacked vs clean output) over alpha; higher = more robust",
                [
                    "model",
                    "rank",
                    "score",
                    "clean PSNR-Y",
                    *p["alphas"],
                    "universal",
                    "APGD-SR",
                    "params",
                ],
                body,
                [
                    f"{r['entry']}: {r['missing']}"
                    for r in doc["rows"]
                    if r["scale"] == s and r["missing"]
                ],
            )
        )
    return out


# ------------------------------------------------------------------------------ strips


def _decode_png(data: bytes) -> torch.Tensor:
    """PNG bytes (a stored figure) as a ``(1, 3, H, W)`` image, read by :mod:`advsr.io`."""
    from advsr.io import read_image

    with tempfile.TemporaryDirectory(prefix="advsr-strip-") as tmp:
        path = Path(tmp) / "figure.png"
        path.write_bytes(data)
        return read_image(path)


def _stored_strip(run: CellRun | None, store: ResultStore, key: str) -> list[Any] | None:
    """The stored figure of the item ``key`` in an attack cell (its five PNGs, in order),
    or None when the cell was stored without it."""
    if run is None:
        return None
    pngs = sorted(
        (name, data)
        for name, (media, data) in store.artifacts(run.cell_id).items()
        if media == "image/png" and name.rpartition("/")[0] == key
    )
    if len(pngs) != len(STRIP_CAPTIONS):
        return None
    return [_decode_png(data) for _, data in pngs]


def _recomputed_strip(
    e: Entry, s: int, protocol: Protocol, data: str, ctx: Context, dev: torch.device
) -> list[torch.Tensor]:
    """The figure of the first image, recomputed exactly as the attack cell computes it."""
    from advsr.engine.attack_cells import configured_attack, image_generator
    from advsr.experiments.attack_sr import sr_figure

    eps = protocol.transfer_alpha / 255
    attack = configured_attack(
        "basic", eps, steps=protocol.steps, reference=protocol.reference, random_start=False
    )
    model = ctx.sr_model(e.model, s, e.weights_at(s), dev)
    pair = ctx.sr_dataset(data, s, protocol.hr_crop)[0]
    lr, hr = pair.lr.to(dev), pair.hr.to(dev)
    res = attack(model, lr, hr, generator=image_generator(0, 0))
    return [img for _, img in sr_figure(lr, res.x_adv, res.sr_clean, res.sr_adv, eps)]


def _strip(
    e: Entry,
    s: int,
    protocol: Protocol,
    data: str,
    by_tag: Mapping[Tag, CellRun],
    store: ResultStore,
    ctx: Context,
    dev: torch.device,
    key: str,
) -> list[tuple[str, bytes]]:
    """An entry's strip: from the stored figure of the first image, else recomputed."""
    run = by_tag.get(Tag("basic", e.name, s, protocol.transfer_alpha))
    images = _stored_strip(run, store, key)
    if images is None:
        images = _recomputed_strip(e, s, protocol, data, ctx, dev)
    return strip_images(images, s, protocol.transfer_alpha)


def strip_images(
    images: Sequence[torch.Tensor], scale: int, alpha: int, crop: int = STRIP_CROP
) -> list[tuple[str, bytes]]:
    """The strip of one attacked image at a readable size: the same centre crop of the LR,
    attacked LR and perturbation, and the matching SR crops, upscaled by nearest neighbour
    to about :data:`STRIP_SIZE` pixels a side, as captioned PNGs.

    Args:
        images: LR, attacked LR, amplified perturbation (``(1, 3, h, w)`` each), clean and
            attacked SR (``(1, 3, s*h, s*w)`` each), in [0, 1].
        scale: the SR factor s.
        alpha: the budget (1/255 units), for the perturbation's caption.
        crop: LR crop side (at most the image's).

    Shape:
        ``(1, 3, h, w)`` x3 and ``(1, 3, s*h, s*w)`` x2 -> five PNGs of ``k*c`` pixels a side,
        ``c = min(crop, h, w)``, ``k`` a multiple of ``s``.
    """
    from advsr.io import encode_png

    lr = images[0]
    h, w = lr.shape[-2:]
    c = max(1, min(crop, h, w))
    top, left = (h - c) // 2, (w - c) // 2
    k = scale * max(1, math.ceil(STRIP_SIZE / (c * scale)))
    out = []
    for n, (caption, img) in enumerate(zip(STRIP_CAPTIONS, images, strict=True)):
        f = 1 if n < 3 else scale
        part = img[..., top * f : (top + c) * f, left * f : (left + c) * f]
        up = k if n < 3 else k // scale
        part = part.repeat_interleave(up, dim=-2).repeat_interleave(up, dim=-1)
        if n == 2:
            caption = f"perturbation x{127.5 / alpha:.3g} (+-{alpha}/255 = black/white)"
        out.append((caption, encode_png(part.detach().float().cpu().clamp(0, 1))))
    return out
