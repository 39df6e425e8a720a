"""Running a paper: its runs expanded into cells, run through the store, and its tables'
numbers read back from the stored rows.

Nothing here knows a paper: :func:`expand_table` turns a :class:`~.spec.TableSpec` into
cells (resolving ``@model`` / ``$slot`` references, fractions and templates, see
:mod:`advsr.reproduce.spec`), :func:`run_paper` validates every cell of every table before
any work, then runs them stage by stage (a stage's trained weights are written where the
next stage reads them), and :func:`table_values` turns the measured cells into
``(row, column) -> number``.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advsr.engine.backend import Backend
from advsr.engine.cell import EXPERIMENTS, CellRun
from advsr.engine.context import Context
from advsr.engine.driver import run_plans
from advsr.engine.plan import plan_cells
from advsr.engine.store import ResultStore, canonical
from advsr.errors import InputError
from advsr.reproduce.spec import PaperSpec, Size, TableSpec, weights_key
from advsr.settings import validate

__all__ = [
    "Cell",
    "Resources",
    "SRGiven",
    "TableRun",
    "check_resources",
    "expand_table",
    "expansion",
    "file_scales",
    "run_paper",
    "short_hash",
    "sr_models_given",
    "table_flags",
    "table_values",
]

_FRACTION = re.compile(r"^(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_TEMPLATE = re.compile(r"\{(\w+)\}")
METRIC = "metric"
"""The pseudo-setting that lays a table's metrics out as rows or columns."""


@dataclass(frozen=True)
class Resources:
    """What the user gives a reproduction.

    Attributes:
        size: ``quick`` (minutes on 2 cores) or ``paper`` (the paper's protocol).
        data: data slot -> folder.
        weights: model (paper model key, zoo classifier name, or, for a paper with
            ``[expand]``, an SR zoo name, ``NAME@xS`` for one scale) -> weight file.
        work: folder for intermediate files (trained weights a later run reads).
    """

    size: Size
    data: Mapping[str, str]
    weights: Mapping[str, str]
    work: Path


@dataclass(frozen=True)
class SRGiven:
    """An SR model the user gives (``--weights imdn=FILE``), at one scale its file serves."""

    model: str
    scale: int
    path: str


def _paper_names(paper: PaperSpec) -> set[str]:
    """The names ``--weights`` gives to the paper's models and classifiers."""
    return set(paper.models) | {d.model for d in paper.data.values() if d.model}


@functools.cache
def _file_scales(name: str, path: str, stamp: tuple[int, int]) -> tuple[int, ...]:
    """The scales of SR zoo model ``name`` whose architecture the file fits (a file written
    by ``advsr train-sr`` for ``name``: the scale it records). ``stamp``: size and mtime."""
    import torch

    from advsr.io import load_state_dict, read_safetensors_metadata
    from advsr.models.loading import fits
    from advsr.models.sr import SR_MODELS

    entry = SR_MODELS.get(name)
    p = Path(path)
    if p.suffix.lower() == ".safetensors":
        meta = read_safetensors_metadata(p)
        text = meta.get("advsr_scale", "")
        if meta.get("advsr_model") == name and text.isdigit():
            return (int(text),)
    sd = load_state_dict(p)
    sd = entry.adapt(dict(sd)) if entry.adapt else sd
    out = []
    for scale in entry.scales:
        with torch.device("meta"):
            shell = entry.arch(scale, **entry.options)
        if fits(shell, sd):
            out.append(scale)
    return tuple(out)


def file_scales(name: str, path: str) -> tuple[int, ...]:
    """The scales at which the weight file ``path`` fits SR zoo model ``name`` (cached)."""
    st = Path(path).stat()
    return _file_scales(name, str(path), (st.st_size, st.st_mtime_ns))


def short_hash(path: str) -> str:
    """The first 6 hex digits of a file's SHA-256 (what table labels show, not the path;
    the same digits as :func:`advsr.files.file_label`)."""
    from advsr.files import file_sha256

    return file_sha256(path)[:6]


def sr_models_given(paper: PaperSpec, res: Resources) -> list[SRGiven]:
    """The SR zoo models among ``res.weights`` (not the paper's models nor its classifiers),
    one entry per scale its file serves, in the order given (a paper without ``[expand]``
    takes none). Files that do not exist are left out (:func:`check_resources` refuses
    them)."""
    if not paper.expand:
        return []
    taken = _paper_names(paper)
    out: list[SRGiven] = []
    for key, path in res.weights.items():
        if key in taken or not Path(path).is_file():
            continue
        name, scale = weights_key(key)
        scales = (scale,) if scale is not None else file_scales(name, path)
        out += [SRGiven(name, s, path) for s in scales]
    return out


def _format(template: str, what: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"{what}: bad template {template!r} ({exc})") from None


def expansion(ref: str, paper: PaperSpec, res: Resources) -> list[tuple[str, str, str | None]]:
    """``"*NAME"`` -> ``(value, label, note)`` per SR model given at the expansion's scales
    (in the order given; a file serving several scales, by scale), else the expansion's
    defaults with its note.

    Raises:
        InputError: no such expansion, a bad template.
    """
    exp = paper.expand.get(ref[1:])
    what = f"papers/{paper.key}.toml [expand.{ref[1:]}]"
    if exp is None:
        raise InputError(f"papers/{paper.key}.toml: no expansion {ref!r} under [expand]")
    given = sr_models_given(paper, res)
    out: list[tuple[str, str, str | None]] = []
    for g in (g for g in given if g.scale in exp.scales):
        value = _format(exp.value, what, model=g.model, scale=g.scale, weights=g.path)
        label = _format(
            exp.label,
            what,
            model=g.model,
            name=paper.sr_labels.get(g.model, g.model),
            scale=g.scale,
            hash=short_hash(g.path),
        )
        if all(value != v for v, _, _ in out):
            out.append((value, label, None))
    if out:
        return out
    return [(d.value, d.label, exp.note or None) for d in exp.default]


@dataclass
class Cell:
    """One cell of a table run, resolved.

    Attributes:
        experiment: the registered experiment.
        settings: its settings, ready to validate.
        labels: setting -> label shown (for list settings: one label per item).
        raw: setting -> the number it stands for (for plots), when numeric.
        measure: whether it fills the table.
        missing: why it cannot run (weights or data not given); None when it can.
        notes: the stand-ins it uses, one line each.
    """

    experiment: str
    settings: dict[str, Any]
    labels: dict[str, Any]
    raw: dict[str, float]
    measure: bool
    missing: str | None = None
    notes: list[str] = field(default_factory=list)

    def key(self) -> str:
        """The cell's settings as canonical text (identical cells of two tables run once)."""
        return f"{self.experiment}:{canonical(self.settings)}"


@dataclass
class TableRun:
    """A table's cells, by stage, and the stored results of the measured ones."""

    table: TableSpec
    stages: list[list[Cell]]
    runs: list[tuple[Cell, CellRun]] = field(default_factory=list)

    @property
    def measured(self) -> list[Cell]:
        """The cells that fill the table (missing ones included)."""
        return [c for stage in self.stages for c in stage if c.measure]


def _text(v: Any) -> str:
    """A value as a spec writes it (the default label)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v)


@dataclass(frozen=True)
class _Ref:
    value: Any
    label: str
    weights: str | None = None
    note: str | None = None
    missing: str | None = None


def _resolve(v: Any, paper: PaperSpec, res: Resources) -> _Ref:
    """A setting value with its ``@model`` / ``$slot`` reference or fraction resolved."""
    if not isinstance(v, str):
        return _Ref(v, _text(v))
    if v.startswith("@"):
        return _model_ref(v[1:], paper, res)
    if v.startswith("$"):
        return _data_ref(v[1:], paper, res)
    m = _FRACTION.fullmatch(v)
    if m:
        return _Ref(float(m.group(1)) / float(m.group(2)), v)
    return _Ref(v, v)


def _model_ref(key: str, paper: PaperSpec, res: Resources) -> _Ref:
    spec = paper.models.get(key)
    if spec is None:
        raise InputError(f"papers/{paper.key}.toml: no model {key!r} under [models]")
    if not spec.arch:
        return _Ref(None, spec.label, missing=spec.note or "not implemented here")
    given = res.weights.get(key)
    if given is not None:
        return _Ref(spec.arch, spec.label, weights=given)
    if not spec.needs_weights:
        return _Ref(spec.arch, spec.label)
    if spec.stand_in is not None:
        note = f"{spec.label}: stand-in {spec.stand_in}" + (f" ({spec.note})" if spec.note else "")
        note += f"; pass --weights {key}=FILE for the official model"
        return _Ref(spec.stand_in, spec.label, note=note)
    return _Ref(None, spec.label, missing=f"weights not given: pass --weights {key}=FILE")


def _data_ref(ref: str, paper: PaperSpec, res: Resources) -> _Ref:
    strict = ref.endswith("!")  # no stand-in: the cell needs the user's data
    slot, _, part = ref.removesuffix("!").partition(".")
    spec = paper.data.get(slot)
    if spec is None:
        raise InputError(f"papers/{paper.key}.toml: no data slot reference ${ref}")
    given = res.data.get(slot)
    if given is not None:
        given, pattern = split_glob(given)
        if part == "pattern":
            return _Ref(pattern, _text(pattern))
        model = spec.model or ""
        w = res.weights.get(model)
        if spec.needs_weights and w is None:
            return _Ref(None, spec.label, missing=f"weights not given: pass --weights {model}=FILE")
        if part == "":
            return _Ref(given, spec.label)
        if part == "model":
            return _Ref(model, spec.model_label or model)
        if part == "weights":
            return _Ref(w, _text(w))
        return _slot_value(spec.values, part, ref, paper)
    si = spec.stand_in
    if si is None or strict:
        return _Ref(None, spec.label, missing=f"data not given: pass --data {slot}=DIR")
    note = f"{spec.label}: stand-in {si.data}" + (f" with {si.model}" if si.model else "")
    note += f" ({si.note}); pass --data {slot}=DIR"
    fixed = {"": si.data, "model": si.model, "weights": si.weights, "pattern": None}
    if part in fixed:
        return _Ref(fixed[part], _text(fixed[part]), note=note)
    r = _slot_value(si.values, part, ref, paper)
    return _Ref(r.value, r.label, note=note)


def split_glob(path: str) -> tuple[str, str | None]:
    """``DIR/imagenet_*.jpg`` -> ``("DIR", "imagenet_*.jpg")``; a plain path -> ``(path, None)``.

    Example:
        >>> split_glob("data/foolbox/imagenet_*.jpg"), split_glob("data/val")
        (('data/foolbox', 'imagenet_*.jpg'), ('data/val', None))
    """
    p = Path(path)
    if any(ch in p.name for ch in "*?["):
        return str(p.parent), p.name
    return path, None


def _slot_value(values: Mapping[str, Any], part: str, ref: str, paper: PaperSpec) -> _Ref:
    if part not in values:
        raise InputError(f"papers/{paper.key}.toml: ${ref} has no value {part!r}")
    return _Ref(values[part], _text(values[part]))


def _fill(template: str, texts: Mapping[str, str], work: Path) -> str:
    """``{key}`` -> the cell's setting as written; ``{work}`` -> the work folder."""

    def sub(m: re.Match[str]) -> str:
        k = m.group(1)
        if k == "work":
            return str(work)
        if k not in texts:
            raise InputError(f"template {template!r} names no setting {k!r}")
        return re.sub(r"[^\w.\-]", "_", texts[k])

    return _TEMPLATE.sub(sub, template)


def _weights_field(experiment: str) -> str | None:
    """``"dict"`` / ``"single"``: how the experiment's config takes weights (None: not)."""
    f = EXPERIMENTS.get(experiment).config.model_fields.get("weights")
    if f is None:
        return None
    return "dict" if "dict" in str(f.annotation) else "single"


def _expand_cell(
    experiment: str,
    raw_cell: dict[str, Any],
    run_labels: Mapping[str, str],
    table: TableSpec,
    paper: PaperSpec,
    res: Resources,
    measure: bool,
) -> Cell:
    settings: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    raw: dict[str, float] = {}
    notes: list[str] = []
    missing = None
    model_weights: dict[str, str] = {}
    texts = {k: _text(v) for k, v in raw_cell.items()}
    for k, v in raw_cell.items():
        if isinstance(v, list):
            refs = [_resolve(x, paper, res) for x in v]
            kept = [r for r in refs if r.missing is None]
            settings[k] = [r.value for r in kept]
            labels[k] = [table.labels.get(r.label, r.label) for r in kept]
            notes += [r.note for r in refs if r.note] + [
                f"{r.label}: {r.missing}" for r in refs if r.missing
            ]
            model_weights.update({r.value: r.weights for r in kept if r.weights})
            continue
        r = _resolve(v, paper, res)
        if r.missing is not None:
            missing = missing or r.missing
        if r.note:
            notes.append(r.note)
        value = _fill(r.value, texts, res.work) if isinstance(r.value, str) else r.value
        settings[k] = value
        labels[k] = run_labels.get(k, table.labels.get(r.label, r.label))
        if isinstance(value, int | float) and not isinstance(value, bool):
            raw[k] = float(value)
        if r.weights is not None:
            model_weights[str(value)] = r.weights
            if k in ("model", "source") and _weights_field(experiment) == "single":
                settings.setdefault("weights", r.weights)
    for k, lab in run_labels.items():
        labels.setdefault(k, lab)
    if _weights_field(experiment) == "dict" and model_weights:
        settings["weights"] = {**model_weights, **settings.get("weights", {})}
    settings = {
        k: v
        for k, v in settings.items()
        if not k.startswith("_") and (v is not None or k != "weights")
    }
    return Cell(experiment, settings, labels, raw, measure, missing, notes)


def expand_table(table: TableSpec, paper: PaperSpec, res: Resources) -> TableRun:
    """A table's runs at ``res.size`` as resolved cells, one list per run (stage);
    ``"*NAME"`` values expanded (:func:`expansion`), their labels added to the table's.

    Raises:
        InputError: a reference to an unknown model or data slot, a bad template.
    """
    labels = dict(table.labels)
    notes: dict[str, str] = {}

    def splice(values: list[Any]) -> list[Any]:
        out = []
        for v in values:
            if not (isinstance(v, str) and v.startswith("*")):
                out.append(v)
                continue
            for value, label, note in expansion(v, paper, res):
                out.append(value)
                labels[value] = label
                if note:
                    notes[value] = note
        return out

    def one(v: Any) -> Any:
        if isinstance(v, list):
            return splice(v)
        return splice([v])[0] if isinstance(v, str) and v.startswith("*") else v

    runs = []
    for run in table.runs:
        grid, settings = run.sized(res.size)
        runs.append(
            (run, {k: splice(v) for k, v in grid.items()}, {k: one(v) for k, v in settings.items()})
        )
    table = table.model_copy(update={"labels": labels})
    stages = []
    for run, grid, settings in runs:
        keys = list(grid)
        cells = []
        for combo in itertools.product(*(grid[k] for k in keys)):
            raw_cell = {**settings, **dict(zip(keys, combo, strict=True))}
            cell = _expand_cell(
                run.experiment, raw_cell, run.labels, table, paper, res, run.measure
            )
            for v in raw_cell.values():
                if isinstance(v, str) and v in notes and notes[v] not in cell.notes:
                    cell.notes.append(notes[v])
            cells.append(cell)
        stages.append(cells)
    return TableRun(table, stages)


def check_resources(paper: PaperSpec, res: Resources) -> None:
    """Refuse data slots and weight names the paper does not have, missing paths, and SR
    weights that do not fit their model (at the scale named).

    Raises:
        InputError: one line naming what the paper accepts.
    """
    for slot, path in res.data.items():
        if slot not in paper.data:
            known = ", ".join(paper.data) or "none"
            raise InputError(f"{paper.key} has no data slot {slot!r}; its slots: {known}")
        folder, _ = split_glob(path)
        if not Path(folder).exists() and not _named_set(folder):
            raise InputError(f"--data {slot}: no such file or folder: {folder}")
    names = _paper_names(paper)
    for key, path in res.weights.items():
        if key in names:
            if not Path(path).is_file():
                raise InputError(f"--weights {key}: no such file: {path}")
            continue
        name, scale = weights_key(key)
        if not paper.expand or not _is_sr_model(name):
            known = ", ".join(sorted(n for n in names if n)) or "none"
            if paper.expand:
                known += ", or any SR zoo model (advsr list models), NAME@xS for one scale"
            raise InputError(
                f"{paper.key} has no model {key!r} to give weights to; its models: {known}"
            )
        _check_sr_weights(key, name, scale, path)


def _named_set(spec: str) -> bool:
    """A registered dataset name (``Set5`` under ``$ADVSR_DATA``), which opens by name; a
    named set that is missing is reported by the dataset itself, with where it looked."""
    from advsr.data import benchmark_set, registered_name

    return registered_name(spec) is not None or benchmark_set(spec) is not None


def _is_sr_model(name: str) -> bool:
    from advsr.models.sr import SR_MODELS

    return name in SR_MODELS and SR_MODELS.get(name).needs_weights


def _check_sr_weights(key: str, name: str, scale: int | None, path: str) -> None:
    """An SR model's weights: an existing file that fits it at ``scale`` (None: any)."""
    from advsr.models.sr import SR_MODELS

    if not Path(path).is_file():
        raise InputError(f"--weights {key}: no such file: {path}")
    have = SR_MODELS.get(name).scales
    listed = ", ".join(f"x{s}" for s in have)
    if scale is not None and scale not in have:
        raise InputError(f"--weights {key}: {name} has no x{scale} (its scales: {listed})")
    fit = file_scales(name, path)
    if scale is None and not fit:
        raise InputError(f"--weights {key}: {path} fits {name} at none of {listed}")
    if scale is not None and scale not in fit:
        where = ", ".join(f"x{s}" for s in fit) or "no scale"
        raise InputError(f"--weights {key}: {path} does not fit {name} at x{scale} ({where})")


def run_paper(
    paper: PaperSpec,
    res: Resources,
    store: ResultStore,
    *,
    progress: bool | None = None,
    backend: Backend | None = None,
) -> list[TableRun]:
    """Expand every table, validate every cell that can run, then run the stages in order
    (stage ``k`` of every table before stage ``k + 1``, identical cells once).

    Raises:
        AdvsrError: an invalid cell (before any work).
    """
    from advsr.experiments.training import materialise

    tables = [expand_table(t, paper, res) for t in paper.tables]
    for tr in tables:
        for cell in (c for stage in tr.stages for c in stage if c.missing is None):
            validate(EXPERIMENTS.get(cell.experiment).config, cell.settings, cell.experiment)
    ctx = Context()
    done: dict[str, CellRun] = {}
    depth = max(len(tr.stages) for tr in tables)
    for k in range(depth):
        todo: dict[str, Cell] = {}
        for tr in tables:
            if k < len(tr.stages):
                todo.update({c.key(): c for c in tr.stages[k] if c.missing is None})
        todo = {key: c for key, c in todo.items() if key not in done}
        plans = plan_cells([(c.experiment, c.settings) for c in todo.values()], ctx)
        runs = run_plans(plans, store, progress=progress, backend=backend)
        for key, run in zip(todo, runs, strict=True):
            done[key] = run
            if "out" in run.config and run.experiment.startswith("train-"):
                materialise(run, store)
    for tr in tables:
        tr.runs = [(c, done[c.key()]) for c in tr.measured if c.missing is None]
    return tables


def _finite_mean(values: list[Any]) -> tuple[float | None, int]:
    vals = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return (statistics.fmean(vals), len(vals)) if vals else (None, 0)


def _metrics(table: TableSpec, cell: Cell) -> list[tuple[str, str]]:
    """``(metric name, label)`` of a cell; ``name@{key}`` expands over the list setting."""
    out = []
    for m in table.metrics:
        t = _TEMPLATE.search(m)
        if t is None:
            out.append((m, table.labels.get(m, m)))
            continue
        key = t.group(1)
        values, labels = cell.settings.get(key, []), cell.labels.get(key, [])
        out += [
            (_TEMPLATE.sub(str(v), m, count=1), lab) for v, lab in zip(values, labels, strict=True)
        ]
    return out


def _label(cell: Cell, keys: list[str], metric: str | None) -> str:
    parts = [metric if k == METRIC else cell.labels.get(k, "") for k in keys]
    return " / ".join(str(p) for p in parts if p not in ("", None))


def row_labels(table: TableSpec, cell: Cell) -> list[str]:
    """The rows a cell fills (one per metric when metrics are rows)."""
    if METRIC in table.rows:
        return [_label(cell, table.rows, lab) for _, lab in _metrics(table, cell)]
    return [_label(cell, table.rows, None)]


def table_flags(tr: TableRun) -> dict[str, list[dict[str, str]]]:
    """The gradient-masking flags of a table's cells, by cell id (experiments that have
    them)."""
    out: dict[str, list[dict[str, str]]] = {}
    by_exp: dict[str, list[CellRun]] = {}
    for _, run in tr.runs:
        by_exp.setdefault(run.experiment, []).append(run)
    for name, runs in by_exp.items():
        fn = EXPERIMENTS.get(name).flags
        if fn is not None:
            out.update({k: v for k, v in fn(runs).items() if v})
    return out


def table_values(tr: TableRun, store: ResultStore | None) -> dict[tuple[str, str], dict[str, Any]]:
    """``(row, col) -> {"value", "n", "x"}``: the table's numbers from the stored rows
    (``x``: the first column setting's number, for plots)."""
    t = tr.table
    out: dict[tuple[str, str], dict[str, Any]] = {}
    xkey = next((k for k in t.cols if k != METRIC), None)
    if t.value == "mean":
        flags = table_flags(tr)
        for cell, run in tr.runs:
            for name, lab in _metrics(t, cell):
                value, n = _finite_mean([r.get(name) for r in run.rows])
                rl, cl = _label(cell, t.rows, lab), _label(cell, t.cols, lab)
                out[(rl, cl)] = {
                    "value": None if value is None else value * t.scale,
                    "n": n,
                    "x": cell.raw.get(xkey) if xkey else None,
                    "flags": flags.get(run.cell_id, []),
                }
        return out
    groups: dict[str, list[tuple[Cell, CellRun]]] = {}
    for cell, run in tr.runs:
        groups.setdefault(_label(cell, t.cols, None), []).append((cell, run))
    for col, members in groups.items():
        exp = EXPERIMENTS.get(members[0][0].experiment)
        doc: Any = exp.summarise([r for _, r in members], store)
        for part in (t.path or "").split("."):
            if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
                doc = doc[int(part)]
            else:
                doc = doc.get(part, {}) if isinstance(doc, dict) and part else doc
        found = doc if isinstance(doc, dict) else {}
        keys = t.metrics or list(found)
        for key, value in ((k, found[k]) for k in keys if k in found):
            if not isinstance(value, int | float) and value is not None:
                continue
            images = max(r.expected for _, r in members)
            out[(t.labels.get(key, key), col)] = {
                "value": None if value is None else float(value) * t.scale,
                "n": images,
                "x": members[0][0].raw.get(xkey) if xkey else None,
            }
    return out
