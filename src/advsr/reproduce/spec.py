"""A paper as data: its protocol, models, data slots, tables, published numbers and figures.

Each seed paper is one TOML file in ``advsr/papers/`` (package data), validated by
:class:`PaperSpec`. A table is built from one or more *runs* (a registered experiment with a
grid and settings, exactly as in an ``advsr run`` spec, plus ``quick`` / ``paper`` overrides
per size); only the runs with ``measure = true`` fill the table (the others prepare, e.g.
train the models a later run evaluates).

Values inside a run may refer to the paper's resources:

* ``"@edsr"`` - the paper model ``edsr`` (see :class:`ModelSpec`): the user's
  ``--weights edsr=FILE``, else its bundled stand-in, else the cell is left out and its row
  says which weights to pass;
* ``"$imagenet"``, ``"$imagenet.model"``, ``"$imagenet.weights"``, ``"$imagenet.pattern"``,
  ``"$imagenet.NAME"`` - a data slot (see :class:`DataSpec`): the folder the user passes with
  ``--data imagenet=DIR`` (``DIR/imagenet_*.jpg``: the folder and a file-name pattern),
  the classifier and values that go with it, else the slot's stand-in data, classifier and
  values (a trailing ``!``, ``"$imagenet!"``, refuses the stand-in: without the user's data
  the cell is left out);
* ``"*sr"`` - in a grid list, the expansion ``sr`` of ``[expand]`` (see :class:`Expansion`):
  one value per SR model the user gives (``--weights NAME=FILE`` for any SR zoo model, or
  ``NAME@xS=FILE`` for one scale), labelled with the model, scale and its weights' short
  hash, else the expansion's ``default`` values (bundled stand-ins, labelled as such); in a
  single setting, the first of those values;
* ``"8/255"`` - a fraction, read as a number (and shown as written);
* ``"{work}/m-{trigger}.safetensors"`` - a template over the cell's own settings (as written)
  and ``work``, the folder of the run's intermediate files.

A statement about the numbers (that rows agree, that one row is higher than another, that a
value falls with the budget) is never plain text: it is a :class:`Claim` under
``[[table.claims]]``, with the :class:`Check` that decides it on the run's own table (see
:mod:`advsr.reproduce.claims`); plain text that reads like one, or that names a path of the
development checkout, is refused when the paper is loaded (:func:`parse_paper`).

A setting whose name starts with ``_`` is a label only: it is not passed to the experiment,
but templates, rows, columns and plots can use it (e.g. the poisoning rate of the model a
``backdoor`` cell evaluates).

Example:
    >>> p = load_paper("sr-attacks")
    >>> p.key, [t.id for t in p.tables][:2]
    ('sr-attacks', ['basic', 'alpha'])
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from advsr.errors import InputError, UnknownNameError
from advsr.settings import Settings, validate

__all__ = [
    "DEV_PATHS",
    "WEIGHTS_GRAMMAR",
    "Cells",
    "Check",
    "Claim",
    "DataSpec",
    "Expansion",
    "FigureSpec",
    "ModelSpec",
    "PaperSpec",
    "Published",
    "RunSpec",
    "Size",
    "TableSpec",
    "lint_paper",
    "load_paper",
    "paper_keys",
    "weights_key",
]

Size = Literal["quick", "paper"]


class Override(Settings):
    """What one size changes in a run: grid values and settings replaced."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


class RunSpec(Settings):
    """One registered experiment crossed over a grid, as in an ``advsr run`` spec."""

    experiment: str
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    quick: Override = Field(default_factory=Override)
    paper: Override = Field(default_factory=Override)
    measure: bool = True
    """Whether the run's cells fill the table (False: a preparation, e.g. training)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Setting -> the label its cells show, whatever the value (e.g. the p = 0 baseline of a
    backdoor table shown in the paper's "None" column)."""

    def sized(self, size: Size) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """The grid and settings at ``size``."""
        o = self.quick if size == "quick" else self.paper
        return {**self.grid, **o.grid}, {**self.settings, **o.settings}


class Published(Settings):
    """One published number: where it sits in the paper's table, and where it comes from."""

    row: str
    col: str
    value: float
    source: str
    """Paper, table, row and column as printed (e.g. ``Table 1, Inception v-3 / FGSM-2``)."""


Relation = Literal["<", "<=", ">", ">=", "=="]


class Cells(Settings):
    """Cells of a reproduced table, by row and column label.

    ``rows`` and ``cols`` are labels or ``fnmatch`` patterns (``"median *"``), as the table
    prints them; a cell is taken when it has a number (``of``: ours, or the paper's).
    """

    table: str | None = None
    """Another table of the paper (by id); None: the claim's own table."""
    rows: list[str] = Field(default_factory=lambda: ["*"])
    cols: list[str] = Field(default_factory=lambda: ["*"])
    of: Literal["ours", "published"] = "ours"
    at: Literal["all", "first", "last"] = "all"
    """Only the first or last of the matched columns (in the table's column order)."""

    @field_validator("rows", "cols", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Check(Settings):
    """A relation between cells of the run's tables, decided on its numbers.

    * ``spread``: within each group of ``cells`` (``per`` column, row, or all of them), the
      largest minus the smallest value is at most ``max`` and at least ``min``
      ("the rows agree within 0.5 dB", "the choice moves the result by several dB");
    * ``compare``: every cell of ``cells`` stands in ``op`` to its partner in ``than`` (the
      cell that shares the coordinates ``than`` does not name: its column when it names
      rows, its row when it names columns, the same cell when it names neither), or to
      ``value``; ``<`` / ``>`` by more than ``margin``, ``==`` within ``margin``;
    * ``best`` / ``worst``: in each column, the highest (lowest) value among ``cells`` and
      ``than`` (default: every row of the column) is one of ``cells``.

    ``than`` takes the table, rows and columns of ``cells`` for the fields it leaves out.
    """

    kind: Literal["spread", "compare", "best", "worst"]
    cells: Cells = Field(default_factory=Cells)
    than: Cells | None = None
    value: float | None = None
    op: Relation = "<="
    margin: float = Field(0.0, ge=0)
    max: float | None = Field(None, ge=0)
    min: float | None = Field(None, ge=0)
    per: Literal["col", "row", "all"] = "col"

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind == "spread" and self.max is None and self.min is None:
            raise ValueError("a spread check needs max or min")
        if self.kind == "compare" and (self.than is None) == (self.value is None):
            raise ValueError("a compare check needs one of than and value")
        return self


class Claim(Settings):
    """A statement about the numbers, printed only as far as the run's numbers support it.

    Every check holds: ``text`` is printed with what the numbers show. One fails: the
    ``otherwise`` text (else nothing but what the numbers show) is printed in its place. The
    numbers a check needs are missing: nothing is printed. ``paper = true``: the text is the
    paper's claim (``the report claims ...``), printed in every case with the run's verdict;
    only such a claim may have no check, and then says why (``unchecked``).
    """

    text: str
    checks: list[Check] = Field(default_factory=list)
    otherwise: str = ""
    paper: bool = False
    unchecked: str = ""
    """Why a paper's claim is not checked here (it has no checks)."""

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if not self.checks and not (self.paper and self.unchecked):
            raise ValueError("a claim needs checks (or, for the paper's claim, unchecked = why)")
        if self.checks and self.unchecked:
            raise ValueError("a claim with checks is not unchecked")
        return self


class TableSpec(Settings):
    """One reproduced table: how its cells are computed and laid out, and the paper's
    numbers.

    ``rows`` and ``cols`` name settings of the measured cells (their labels, as mapped by
    ``labels``); the pseudo-setting ``metric`` makes each of ``metrics`` a row or column.
    ``value = "mean"``: a cell's number is the mean over its images of the metric (NaN and
    infinite values left out, then multiplied by ``scale``). ``value = "summary"``: the cells
    sharing a column are summarised by their experiment and ``path`` (dotted) names a mapping
    ``row key -> number`` in that summary.
    """

    id: str
    title: str
    source: str = ""
    """What the table reproduces in the paper (``Table 1``, ``Fig. 4``)."""
    runs: list[RunSpec] = Field(min_length=1)
    rows: list[str] = Field(min_length=1)
    cols: list[str] = Field(default_factory=list)
    value: Literal["mean", "summary"] = "mean"
    metrics: list[str] = Field(default_factory=list)
    """Row metrics; ``name@{key}`` expands over the list setting ``key`` (one per item)."""
    path: str | None = None
    scale: float = 1.0
    digits: int = Field(2, ge=0, le=6)
    unit: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    """A value as written (or a metric name) -> the label the paper prints."""
    col_order: Literal["ours", "published"] = "ours"
    """Columns in the order the cells give them, or the published numbers' order first."""
    published: list[Published] = Field(default_factory=list)
    why: list[str] = Field(default_factory=list)
    """Why ours may differ from the paper's numbers, one line each (plain text: no claim
    about the numbers, see ``claims``)."""
    claims: list[Claim] = Field(default_factory=list)
    """Statements about the numbers, each printed only as far as the run supports it."""


class FigureSpec(Settings):
    """A figure re-drawn from the store, from the measured cells of one table.

    ``line`` plots the table's values against its first column setting (one series per
    row); ``images`` shows the image grids the cells stored; ``curves`` draws, for each
    curve name under ``curves`` in the entries at ``path`` of the experiment's summary, one
    plot with one series per entry (named by its ``series`` field); ``experiment`` shows the
    plots and figures of the experiment's own report.
    """

    id: str
    title: str
    source: str = ""
    kind: Literal["line", "images", "curves", "experiment"]
    table: str
    xlabel: str = ""
    ylabel: str = ""
    path: str = "cells"
    series: str = "attack"
    curves: str = "curves"


class ModelSpec(Settings):
    """A model of the paper and how it is had here."""

    label: str
    """The paper's name for it (``EDSR``)."""
    arch: str
    """The zoo architecture that takes the official weights (``edsr``)."""
    needs_weights: bool = True
    """False for a model that has none (bicubic)."""
    stand_in: str | None = None
    """A bundled model used when no weights are given (``demo-edsr``)."""
    note: str = ""


class StandIn(Settings):
    """What a data slot uses when the user gives no data."""

    data: str
    model: str | None = None
    weights: str | None = None
    note: str
    values: dict[str, Any] = Field(default_factory=dict)
    """Other values the stand-in brings (``$slot.NAME``), e.g. a defense spec."""


class DataSpec(Settings):
    """A dataset the paper uses (``--data SLOT=PATH``), the classifier that goes with it,
    and the stand-in used without it."""

    label: str
    """The paper's dataset (``ILSVRC-2012 validation, 5000 images``)."""
    help: str
    """The layouts accepted."""
    model: str | None = None
    """The classifier evaluated on the user's data (a zoo name)."""
    model_label: str = ""
    needs_weights: bool = False
    """The classifier has no weights of its own: ``--weights MODEL=FILE`` is required."""
    values: dict[str, Any] = Field(default_factory=dict)
    """Values that go with the user's data (``$slot.NAME``), e.g. a defense spec."""
    stand_in: StandIn | None = None
    """None: the tables that need this data are left out without it."""


class Fixed(Settings):
    """A value an expansion yields when no SR model given fits it (a bundled stand-in)."""

    value: str
    label: str


class Expansion(Settings):
    """``"*NAME"`` in a grid: one value per SR model given, at each of ``scales`` it has.

    ``value`` and ``label`` are templates over ``{model}`` (the zoo name), ``{name}`` (its
    label in the paper's ``sr_labels``, else the zoo name), ``{scale}``, ``{weights}`` (the
    file; values only, never labels) and ``{hash}`` (the first 6 hex digits of the file's
    SHA-256). Without an SR model given at any of ``scales``: the ``default`` values, and
    ``note`` under the table.
    """

    scales: list[int] = Field(min_length=1)
    value: str
    label: str
    default: list[Fixed] = Field(min_length=1)
    note: str = ""


WEIGHTS_GRAMMAR = "NAME=FILE or SR_MODEL@xS=FILE (e.g. imdn=IMDN_x2.pth, imdn@x3=IMDN_x3.pth)"
"""What ``--weights`` accepts (one line, for errors)."""


def weights_key(key: str) -> tuple[str, int | None]:
    """``"imdn@x3"`` -> ``("imdn", 3)``; ``"carn-m"`` -> ``("carn-m", None)`` (the one
    grammar of :func:`advsr.weight_args.split_weights_key`).

    Raises:
        InputError: any other form, naming the grammar.

    Example:
        >>> weights_key("imdn@x3"), weights_key("resnet20-cifar10")
        (('imdn', 3), ('resnet20-cifar10', None))
    """
    from advsr.weight_args import split_weights_key

    named = split_weights_key(key)
    if named is None or key != key.strip().lower():
        raise InputError(f"--weights expects {WEIGHTS_GRAMMAR}, got {key!r}")
    return named


class PaperSpec(Settings):
    """A seed paper: what it reproduces, under which protocol, and how."""

    key: str
    title: str
    citation: str
    file: str
    """The file name of the paper's text the spec was written from (not shipped, never
    printed: name the paper by its title and citation)."""
    reproduces: str
    protocol: dict[str, str]
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    data: dict[str, DataSpec] = Field(default_factory=dict)
    expand: dict[str, Expansion] = Field(default_factory=dict)
    """``"*NAME"`` expansions over the SR models the user gives (see :class:`Expansion`)."""
    sr_labels: dict[str, str] = Field(default_factory=dict)
    """SR zoo name -> the label its rows show (``imdn = "IMDN"``)."""
    tables: list[TableSpec] = Field(min_length=1)
    figures: list[FigureSpec] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def only(self, ids: Sequence[str]) -> PaperSpec:
        """The paper with only the tables ``ids`` (and the figures drawn from them).

        Raises:
            UnknownNameError: an id the paper does not have.
        """
        for tid in ids:
            self.table(tid)
        keep = [t for t in self.tables if t.id in ids]
        figures = [f for f in self.figures if f.table in ids]
        return self.model_copy(update={"tables": keep, "figures": figures})

    def table(self, tid: str) -> TableSpec:
        """The table called ``tid``."""
        for t in self.tables:
            if t.id == tid:
                return t
        known = ", ".join(t.id for t in self.tables)
        raise UnknownNameError(f"{self.key} has no table {tid!r}; its tables: {known}")


def _papers_dir() -> Any:
    return resources.files("advsr").joinpath("papers")


@cache
def paper_keys() -> tuple[str, ...]:
    """The packaged papers, by key."""
    names = (p.name for p in _papers_dir().iterdir() if p.name.endswith(".toml"))
    return tuple(sorted(n.removesuffix(".toml") for n in names))


DEV_PATHS = ("../shared", "shared/papers", "/work/")
"""Paths of the development checkout: no text a paper prints may name one."""

_RELATION = re.compile(
    r"\b(?:agrees? within|(?:lower|higher|greater|smaller|larger|better|worse) than"
    r"|reads? (?:higher|lower)|(?:falls|rises|drops|grows|decreases|increases) with"
    r"|beats?|outperforms?|(?:the )?best|worst|equals?|moves? the result|costs? most)\b",
    re.IGNORECASE,
)
"""Words of a claim about the numbers: plain text with one must be a :class:`Claim`."""


def _prose(paper: PaperSpec) -> Iterator[tuple[str, str]]:
    """``(where, text)`` for the plain text a paper prints beside its numbers (not claims)."""
    yield "reproduces", paper.reproduces
    yield from ((f"protocol.{k}", v) for k, v in paper.protocol.items())
    yield from (("notes", n) for n in paper.notes)
    for name, m in paper.models.items():
        yield f"models.{name}.note", m.note
    for name, d in paper.data.items():
        yield f"data.{name}.help", d.help
        if d.stand_in is not None:
            yield f"data.{name}.stand_in.note", d.stand_in.note
    yield from ((f"expand.{name}.note", e.note) for name, e in paper.expand.items())
    for t in paper.tables:
        yield from ((f"table {t.id} why", w) for w in t.why)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a dumped spec, with where it sits."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def lint_paper(paper: PaperSpec, what: str = "paper") -> None:
    """Refuse text that names a development path, and plain text that claims a relation
    between numbers (it must be a :class:`Claim`, checked on the run's numbers).

    Raises:
        InputError: naming the text.

    Example:
        >>> lint_paper(load_paper("sr-attacks"))
    """
    dump = paper.model_dump()
    dump.pop("file")  # a file name of the development checkout, never printed
    for where, text in _strings(dump, ""):
        if any(d in text for d in DEV_PATHS):
            raise InputError(f"{what}: {where} names a development path: {text!r}")
    for where, text in _prose(paper):
        m = _RELATION.search(text)
        if m:
            raise InputError(
                f"{what}: {where} claims a relation ({m.group(0)!r}) in plain text: make it a "
                f"[[table.claims]] entry with a check: {text!r}"
            )


def _check_claims(paper: PaperSpec, what: str) -> None:
    """Every table a claim's cells name exists."""
    ids = {t.id for t in paper.tables}
    for t in paper.tables:
        for claim in t.claims:
            for check in claim.checks:
                for cells in (check.cells, check.than):
                    if cells is not None and cells.table is not None and cells.table not in ids:
                        raise InputError(
                            f"{what}: table {t.id} has a claim on no table {cells.table!r}"
                        )


def parse_paper(data: dict[str, Any], what: str = "paper") -> PaperSpec:
    """A paper from its parsed TOML (``[[table]]`` / ``[[figure]]`` arrays).

    Raises:
        InputError: an invalid spec, a figure or claim naming no table, or text that names
            a development path or claims a relation unchecked (:func:`lint_paper`).
    """
    data = dict(data)
    data["tables"] = data.pop("table", [])
    data["figures"] = data.pop("figure", [])
    paper = validate(PaperSpec, data, what)
    ids = [t.id for t in paper.tables]
    if len(set(ids)) != len(ids):
        raise InputError(f"{what}: two tables share an id")
    for f in paper.figures:
        if f.table not in ids:
            raise InputError(f"{what}: figure {f.id} names no table {f.table!r}")
    for t in paper.tables:
        for run in t.runs:
            for o in (run, run.quick, run.paper):
                values = [*o.settings.values(), *(x for v in o.grid.values() for x in v)]
                for v in values:
                    for x in v if isinstance(v, list) else [v]:
                        if isinstance(x, str) and x.startswith("*") and x[1:] not in paper.expand:
                            raise InputError(f"{what}: table {t.id} names no expansion {x!r}")
    _check_claims(paper, what)
    lint_paper(paper, what)
    return paper


@cache
def load_paper(key: str) -> PaperSpec:
    """The packaged paper ``key``.

    Raises:
        UnknownNameError: no such paper (with the closest keys).
    """
    if key not in paper_keys():
        import difflib

        close = difflib.get_close_matches(key, paper_keys(), n=2)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise UnknownNameError(f"unknown paper {key!r}{hint}; known: {', '.join(paper_keys())}")
    text = _papers_dir().joinpath(f"{key}.toml").read_text("utf-8")
    return parse_paper(tomllib.loads(text), f"papers/{key}.toml")
