"""Claims about a reproduction's numbers, decided on the run's own tables.

A paper's statements about its numbers ("the rows agree within 0.5 dB", "TVM beats K-means")
are data (:class:`~advsr.reproduce.spec.Claim`, each with one or more
:class:`~advsr.reproduce.spec.Check`). :func:`judge` decides a claim on the tables of a
reproduction's document (:func:`advsr.reproduce.render.paper_document`) and writes the line
that may be printed:

* every check holds: the claim, with what the numbers show;
* a check fails: the claim's ``otherwise`` text (else only what the numbers show) in its
  place, with the numbers;
* the numbers a check needs are not in the run: nothing (a paper's own claim says it was
  not checked).

What the numbers show (the *finding*) is written from the cells themselves, with the
observed relation (``<``, ``=``, ``>``), so a printed line is true of the run that prints it.

Example:
    >>> from advsr.reproduce.spec import Check, Claim
    >>> table = {"id": "t", "unit": "dB", "digits": 1, "cols": ["8/255"], "cells": [
    ...     {"row": "a", "col": "8/255", "ours": 30.1, "published": None},
    ...     {"row": "b", "col": "8/255", "ours": 30.3, "published": None}]}
    >>> claim = Claim(text="the rows agree", checks=[Check(kind="spread", max=0.5)])
    >>> judge(claim, {"t": table}, "t")["line"]
    'the rows agree (this run: 8/255: a 30.1 dB to b 30.3 dB, 0.2 dB apart)'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from advsr.reproduce.spec import Cells, Check, Claim

__all__ = ["Outcome", "Point", "evaluate", "judge", "select"]

Status = Literal["holds", "fails", "unchecked"]
Tables = Mapping[str, Mapping[str, Any]]
"""Table id -> the table's part of the document (``rows``, ``cols``, ``cells``, ...)."""

_SHOWN = 4
"""Pairs or groups a finding lists before it counts the rest."""


@dataclass(frozen=True)
class Point:
    """One number of a table: ours or the paper's, at a row and column label."""

    row: str
    col: str
    value: float


@dataclass(frozen=True)
class Outcome:
    """A check decided: ``holds`` / ``fails`` / ``unchecked`` (the numbers are not there),
    and what the numbers show (empty when unchecked)."""

    status: Status
    finding: str = ""


@dataclass(frozen=True)
class _Format:
    """How a table prints its numbers (its digits and unit)."""

    digits: int
    unit: str

    def num(self, v: float) -> str:
        text = f"{v:.{self.digits}f}"
        if self.unit == "%":
            return f"{text}%"
        return f"{text} {self.unit}" if self.unit else text

    def gap(self, v: float) -> str:
        """A difference of two numbers (points, for percentages)."""
        text = f"{v:.{self.digits}f}"
        if self.unit == "%":
            return f"{text} points"
        return f"{text} {self.unit}" if self.unit else text


def _fmt(table: Mapping[str, Any] | None) -> _Format:
    if table is None:
        return _Format(2, "")
    return _Format(int(table.get("digits", 2)), str(table.get("unit", "")))


def _matches(label: str, patterns: list[str]) -> bool:
    return any(label == p or fnmatchcase(label, p) for p in patterns)


def select(tables: Tables, own: str, cells: Cells) -> list[Point]:
    """The numbers of ``cells`` in the document's tables (``own``: the claim's table).

    A cell without a number (not computed, not published, not finite) is left out; ``at``
    keeps the first or last matched column that has one.
    """
    table = tables.get(cells.table or own)
    if table is None:
        return []
    key = "ours" if cells.of == "ours" else "published"
    points = [
        Point(str(c["row"]), str(c["col"]), float(c[key]))
        for c in table.get("cells", [])
        if isinstance(c.get(key), int | float)
        and math.isfinite(c[key])
        and _matches(str(c["row"]), cells.rows)
        and _matches(str(c["col"]), cells.cols)
    ]
    if cells.at == "all" or not points:
        return points
    order = [c for c in table.get("cols", []) if any(p.col == c for p in points)]
    pick = order[0] if cells.at == "first" else order[-1]
    return [p for p in points if p.col == pick]


def _than(check: Check) -> Cells:
    """``than`` with the table, rows, columns and ``of`` of ``cells`` where it names none
    (``at`` is its own: the pairing keeps to the columns of ``cells``)."""
    base = check.cells
    than = check.than if check.than is not None else Cells()
    given = than.model_fields_set if check.than is not None else set()
    inherited = {k: getattr(base, k) for k in ("table", "rows", "cols", "of") if k not in given}
    return than.model_copy(update=inherited)


def _listed(parts: list[str], total: int) -> str:
    more = total - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _outcome(parts: list[tuple[bool, str]]) -> Outcome:
    """A check's outcome from its ``(holds, finding)`` parts: unchecked without any, else
    holds when every part does; the findings listed failures first."""
    if not parts:
        return Outcome("unchecked")
    ordered = [t for ok, t in parts if not ok] + [t for ok, t in parts if ok]
    status: Status = "holds" if all(ok for ok, _ in parts) else "fails"
    return Outcome(status, _listed(ordered[:_SHOWN], len(ordered)))


def _spread(check: Check, tables: Tables, own: str) -> Outcome:
    f = _fmt(tables.get(check.cells.table or own))
    groups: dict[str, list[Point]] = {}
    for p in select(tables, own, check.cells):
        key = {"col": p.col, "row": p.row, "all": ""}[check.per]
        groups.setdefault(key, []).append(p)

    def name(p: Point) -> str:
        return {"col": p.row, "row": p.col, "all": f"{p.row} / {p.col}"}[check.per]

    parts: list[tuple[bool, str]] = []
    for key, pts in groups.items():
        if len(pts) < 2:
            continue
        lo, hi = min(pts, key=lambda p: p.value), max(pts, key=lambda p: p.value)
        gap = hi.value - lo.value
        text = f"{name(lo)} {f.num(lo.value)} to {name(hi)} {f.num(hi.value)}, {f.gap(gap)} apart"
        ok = True
        if check.max is not None and gap > check.max + 1e-12:
            ok, text = False, f"{text}, more than {f.gap(check.max)}"
        if check.min is not None and gap < check.min - 1e-12:
            ok, text = False, f"{text}, less than {f.gap(check.min)}"
        parts.append((ok, f"{key}: {text}" if key else text))
    return _outcome(parts)


@dataclass(frozen=True)
class _Pairing:
    """How two cells of a comparison are named: the coordinates they share are said once."""

    row_shared: bool
    col_shared: bool
    marks: tuple[str, str]
    """What each side is: ``(ours, the paper)`` when they differ, ``the paper`` for the
    paper's numbers, else empty (ours)."""
    other: str | None
    """The other table's id, when ``than`` is in another table."""

    def side(self, p: Point, side: int, num: str) -> str:
        """One side: the coordinates it does not share, its number, what it is."""
        coords = [p.row] * (not self.row_shared) + [p.col] * (not self.col_shared)
        extra = [self.marks[side]] if self.marks[side] else []
        if side == 1 and self.other:
            extra.append(f"table {self.other}")
        parts = [" / ".join(coords)] * bool(coords) + [num]
        return " ".join(parts + [f"({', '.join(extra)})"] * bool(extra))

    def text(self, a: Point, b: Point, a_num: str, b_num: str) -> str:
        """``"{shared}: {a} {op} {b}"``, ``op`` the observed relation."""
        shared = [a.row] * self.row_shared + [a.col] * self.col_shared
        body = f"{self.side(a, 0, a_num)} {_observed(a.value, b.value)} {self.side(b, 1, b_num)}"
        return f"{' / '.join(shared)}: {body}" if shared else body


_OPS: dict[str, Callable[[float, float, float], bool]] = {
    "<": lambda a, b, m: a < b - m,
    "<=": lambda a, b, m: a <= b + m,
    ">": lambda a, b, m: a > b + m,
    ">=": lambda a, b, m: a >= b - m,
    "==": lambda a, b, m: abs(a - b) <= m,
}


def _observed(a: float, b: float) -> str:
    return "<" if a < b else ">" if a > b else "="


def _side(cells: Cells, other: Cells) -> str:
    """How a comparison names one side: the paper's numbers, or ours against the paper's."""
    if cells.of == "published":
        return "the paper"
    return "ours" if other.of == "published" else ""


def _compare(check: Check, tables: Tables, own: str) -> Outcome:
    f = _fmt(tables.get(check.cells.table or own))
    lhs = select(tables, own, check.cells)
    op = _OPS[check.op]
    parts: list[tuple[bool, str]] = []
    if check.value is not None:
        for p in lhs:
            text = f"{p.row} / {p.col}: {f.num(p.value)} {_observed(p.value, check.value)} "
            parts.append((op(p.value, check.value, check.margin), text + f.num(check.value)))
    else:
        than = _than(check)
        assert check.than is not None  # a compare check has one of than and value
        given = check.than.model_fields_set
        row_shared, col_shared = "rows" not in given, "cols" not in given
        rhs = select(tables, own, than)
        rf = _fmt(tables.get(than.table or own))
        marks = (_side(check.cells, than), _side(than, check.cells))
        other = than.table is not None and than.table != (check.cells.table or own)
        pairing = _Pairing(row_shared, col_shared, marks, than.table if other else None)
        for a in lhs:
            for b in rhs:
                if (row_shared and a.row != b.row) or (col_shared and a.col != b.col):
                    continue
                if a == b and not other and check.cells.of == than.of:
                    continue
                text = pairing.text(a, b, f.num(a.value), rf.num(b.value))
                if check.margin and check.op in ("<", ">"):
                    text += f" ({f.gap(abs(a.value - b.value))} apart)"
                parts.append((op(a.value, b.value, check.margin), text))
    return _outcome(parts)


def _extreme(check: Check, tables: Tables, own: str) -> Outcome:
    f = _fmt(tables.get(check.cells.table or own))
    best = check.kind == "best"
    targets = select(tables, own, check.cells)
    pool_sel = (
        _than(check)
        if check.than is not None
        else check.cells.model_copy(update={"rows": ["*"], "at": "all"})
    )
    pool = select(tables, own, pool_sel)
    word, rel = ("highest", "above") if best else ("lowest", "below")
    parts: list[tuple[bool, str]] = []
    for col in dict.fromkeys(p.col for p in targets):
        mine = [p for p in targets if p.col == col]
        seen = {p.row for p in mine}
        rivals = [p for p in pool if p.col == col and p.row not in seen]
        if not rivals:
            continue
        key = (lambda p: p.value) if best else (lambda p: -p.value)
        top_mine, top_rival = max(mine, key=key), max(rivals, key=key)
        ok = key(top_mine) >= key(top_rival)
        n = len(mine) + len(rivals)
        if ok:
            text = f"{col}: {top_mine.row} {f.num(top_mine.value)}, the {word} of {n} "
            text += f"(next: {top_rival.row} {f.num(top_rival.value)})"
        else:
            text = f"{col}: {top_rival.row} {f.num(top_rival.value)} {rel} "
            text += f"{top_mine.row} {f.num(top_mine.value)}"
        parts.append((ok, text))
    return _outcome(parts)


def evaluate(check: Check, tables: Tables, own: str) -> Outcome:
    """Decide one check on the document's tables (``own``: the claim's table id)."""
    if check.kind == "spread":
        return _spread(check, tables, own)
    if check.kind == "compare":
        return _compare(check, tables, own)
    return _extreme(check, tables, own)


def _line(claim: Claim, status: Status, finding: str) -> str | None:
    """What is printed for a claim decided ``status`` (None: nothing)."""
    if claim.paper:
        if status == "unchecked":
            why = claim.unchecked or "this run lacks the numbers it compares"
            return f"{claim.text} (not checked here: {why})"
        verdict = "so in this run" if status == "holds" else "not so in this run"
        return f"{claim.text}: {verdict} ({finding})"
    if status == "holds":
        return f"{claim.text} (this run: {finding})"
    if status == "fails":
        return (
            f"{claim.otherwise} (this run: {finding})"
            if claim.otherwise
            else f"this run: {finding}"
        )
    return None


def judge(claim: Claim, tables: Tables, own: str) -> dict[str, Any]:
    """A claim decided on the document's tables: its text, whether it is the paper's, the
    status (``holds``, ``fails``, ``unchecked``), what the numbers show, and the line to
    print (None: nothing is printed)."""
    outcomes = [evaluate(c, tables, own) for c in claim.checks]
    statuses = {o.status for o in outcomes}
    status: Status = (
        "fails"
        if "fails" in statuses
        else "unchecked"
        if "unchecked" in statuses or not outcomes
        else "holds"
    )
    finding = "; ".join(o.finding for o in outcomes if o.finding)
    return {
        "text": claim.text,
        "paper": claim.paper,
        "status": status,
        "finding": finding,
        "line": _line(claim, status, finding),
    }
