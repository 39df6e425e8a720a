"""``advsr reproduce`` prints only the claims its own numbers support: the claim checker on
synthetic documents, the spec rules that keep claims out of plain text, and no development
path in anything a recipe prints."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from advsr.errors import InputError
from advsr.reproduce import load_paper, paper_keys
from advsr.reproduce.claims import judge
from advsr.reproduce.engine import METRIC, Resources, _label, _metrics, expand_table
from advsr.reproduce.render import paper_document, paper_tables
from advsr.reproduce.spec import DEV_PATHS, Cells, Check, Claim, parse_paper


def _table(tid: str, values: dict[tuple[str, str], float | None], **kw: Any) -> dict[str, Any]:
    """A table of a reproduction's document: ``(row, col) -> ours``; ``published`` in kw."""
    published: dict[tuple[str, str], float] = kw.pop("published", {})
    keys = list(dict.fromkeys([*values, *published]))
    cells = [
        {"row": r, "col": c, "ours": values.get((r, c)), "published": published.get((r, c))}
        for r, c in keys
    ]
    cols = list(dict.fromkeys(c for _, c in keys))
    rows = list(dict.fromkeys(r for r, _ in keys))
    return {"id": tid, "unit": "dB", "digits": 2, "rows": rows, "cols": cols, "cells": cells, **kw}


LR = _table(
    "alpha",
    {
        ("Bicubic", "2/255"): 42.14,
        ("Bicubic", "8/255"): 30.16,
        ("CARN-M", "2/255"): 44.56,
        ("CARN-M", "8/255"): 34.42,
        ("IMDN", "8/255"): 37.16,
        ("EDSR", "8/255"): None,  # not computed: never a number of a claim
    },
)
STAND_INS = _table(
    "alpha",
    {("Bicubic", "8/255"): 30.16, ("demo-edsr", "8/255"): 30.29, ("demo-carn-m", "8/255"): 30.37},
)
AGREE = Claim(
    text="the rows agree within 0.5 dB",
    otherwise="the LR PSNR depends on the model here",
    checks=[Check(kind="spread", per="col", max=0.5)],
)


def test_a_claim_that_holds_is_printed_with_the_numbers() -> None:
    got = judge(AGREE, {"alpha": STAND_INS}, "alpha")
    assert got["status"] == "holds"
    assert got["line"] == (
        "the rows agree within 0.5 dB (this run: 8/255: Bicubic 30.16 dB to demo-carn-m "
        "30.37 dB, 0.21 dB apart)"
    )


def test_a_claim_that_fails_is_rewritten_with_what_the_rows_show() -> None:
    got = judge(AGREE, {"alpha": LR}, "alpha")
    assert got["status"] == "fails"
    line = got["line"]
    assert line.startswith("the LR PSNR depends on the model here (this run: ")
    assert "agree" not in line
    assert "8/255: Bicubic 30.16 dB to IMDN 37.16 dB, 7.00 dB apart, more than 0.50 dB" in line
    assert "2/255: Bicubic 42.14 dB to CARN-M 44.56 dB, 2.42 dB apart, more than 0.50 dB" in line
    bare = judge(AGREE.model_copy(update={"otherwise": ""}), {"alpha": LR}, "alpha")["line"]
    assert bare.startswith("this run: 2/255: Bicubic 42.14 dB to CARN-M 44.56 dB")
    assert "agree" not in bare


def test_a_claim_without_its_numbers_is_dropped_unless_it_is_the_papers() -> None:
    only_one = _table("alpha", {("Bicubic", "8/255"): 30.16, ("EDSR", "8/255"): None})
    assert judge(AGREE, {"alpha": only_one}, "alpha")["line"] is None
    assert judge(AGREE, {}, "alpha")["status"] == "unchecked"  # table not run (--table)
    paper = Claim(text="the report claims X beats Y", paper=True, checks=AGREE.checks)
    line = judge(paper, {"alpha": only_one}, "alpha")["line"]
    assert (
        line
        == "the report claims X beats Y (not checked here: this run lacks the numbers it compares)"
    )
    why = Claim(text="the report claims Z", paper=True, unchecked="no L2 axis here")
    assert (
        judge(why, {}, "alpha")["line"] == "the report claims Z (not checked here: no L2 axis here)"
    )


def test_compare_pairs_cells_by_what_than_does_not_name() -> None:
    t = _table(
        "defenses",
        {
            ("TVM 25%", "FGSM"): 60.0,
            ("TVM 25%", "DeepFool"): 40.0,
            ("K-means", "FGSM"): 50.0,
            ("K-means", "DeepFool"): 45.0,
            ("No defense", "Clean"): 100.0,
        },
        unit="%",
        digits=1,
    )
    beats = Check(kind="compare", cells=Cells(rows=["TVM *"]), op=">", than=Cells(rows=["K-means"]))
    claim = Claim(text="the report claims TVM beats K-means", paper=True, checks=[beats])
    got = judge(claim, {"defenses": t}, "defenses")
    assert got["status"] == "fails"  # by column: FGSM holds, DeepFool does not
    assert got["line"] == (
        "the report claims TVM beats K-means: not so in this run (DeepFool: TVM 25% 40.0% < "
        "K-means 45.0%; FGSM: TVM 25% 60.0% > K-means 50.0%)"
    )
    hundred = Check(
        kind="compare", cells=Cells(rows=["No defense"], cols=["Clean"]), op="==", value=100
    )
    got = judge(Claim(text="clean is 100%", checks=[hundred]), {"defenses": t}, "defenses")
    assert got["line"] == "clean is 100% (this run: No defense / Clean: 100.0% = 100.0%)"


def test_compare_against_the_papers_numbers_and_another_table() -> None:
    t4 = _table(
        "table4",
        {("Nearest, US", "Clean"): 99.0, ("Bicubic, US", "Clean"): 90.0},
        published={("Nearest, US", "Clean"): 94.9, ("Bicubic, US", "Clean"): 93.9},
        unit="%",
        digits=1,
    )
    higher = Check(kind="compare", cells=Cells(cols=["Clean"]), op=">", than=Cells(of="published"))
    got = judge(Claim(text="ours read higher", checks=[higher]), {"table4": t4}, "table4")
    assert got["status"] == "fails" and "higher" not in got["line"]
    assert "Bicubic, US / Clean: 90.0% (ours) < 93.9% (the paper)" in got["line"]
    basic = _table("basic", {}, published={("EDSR", "8/255"): 16.14})
    defense = _table("defense", {}, published={("EDSR", "No defense"): 16.14})
    same = Check(
        kind="compare",
        cells=Cells(rows=["EDSR"], cols=["No defense"], of="published"),
        op="==",
        margin=0.005,
        than=Cells(table="basic", rows=["EDSR"], cols=["8/255"]),
    )
    got = judge(
        Claim(text="the two agree", checks=[same]), {"basic": basic, "defense": defense}, "defense"
    )
    assert got["line"] == (
        "the two agree (this run: EDSR / No defense 16.14 dB (the paper) = "
        "EDSR / 8/255 16.14 dB (the paper, table basic))"
    )


def test_best_worst_and_first_last_columns() -> None:
    curve = _table(
        "curve",
        {
            ("median 1x3", "1/255"): 80.0,
            ("median 3x3", "1/255"): 70.0,
            ("median 1x3", "16/255"): 20.0,
            ("median 3x3", "16/255"): 30.0,
        },
        unit="%",
        digits=1,
    )
    only_small = Claim(
        text="1x3 beats 3x3 only for small budgets",
        checks=[
            Check(
                kind="compare",
                cells=Cells(rows=["median 1x3"], at="first"),
                op=">",
                than=Cells(rows=["median 3x3"]),
            ),
            Check(
                kind="compare",
                cells=Cells(rows=["median 1x3"], at="last"),
                op="<=",
                than=Cells(rows=["median 3x3"]),
            ),
        ],
    )
    got = judge(only_small, {"curve": curve}, "curve")
    assert got["status"] == "holds"
    assert "1/255: median 1x3 80.0% > median 3x3 70.0%" in got["line"]
    assert "16/255: median 1x3 20.0% < median 3x3 30.0%" in got["line"]
    best = Check(kind="best", cells=Cells(rows=["median 3x3"]), than=Cells(rows=["median *"]))
    got = judge(Claim(text="3x3 is the best", checks=[best]), {"curve": curve}, "curve")
    assert got["status"] == "fails"
    assert got["line"] == (
        "this run: 1/255: median 1x3 80.0% above median 3x3 70.0%; "
        "16/255: median 3x3 30.0%, the highest of 2 (next: median 1x3 20.0%)"
    )
    worst = Check(kind="worst", cells=Cells(rows=["median 1x3"], cols=["16/255"]))
    assert judge(Claim(text="w", checks=[worst]), {"curve": curve}, "curve")["status"] == "holds"
    alone = Check(kind="best", cells=Cells(rows=["median 1x3"]), than=Cells(rows=["median 5x5"]))
    assert judge(Claim(text="b", checks=[alone]), {"curve": curve}, "curve")["line"] is None


def test_claim_lines_are_printed_under_their_table() -> None:
    doc = {"tables": [{**STAND_INS, "title": "LR PSNR", "source": "", "rows_are": "model",
                       "cols_are": "eps", "missing": {}, "images": [8], "stand_ins": [],
                       "why": ["plain text"], "size": "quick",
                       "claims": [judge(AGREE, {"alpha": STAND_INS}, "alpha"),
                                  judge(AGREE, {"alpha": LR}, "alpha"),
                                  judge(AGREE, {}, "alpha")]}]}  # fmt: skip
    notes = paper_tables(doc)[0].notes
    assert notes[1] == "why it may differ: plain text"
    assert notes[2].startswith("the rows agree within 0.5 dB (this run: 8/255:")
    assert notes[3].startswith("the LR PSNR depends on the model here (this run: 2/255:")
    assert len(notes) == 4  # the unchecked claim prints nothing


_BASE = (
    'key = "k"\ntitle = "t"\ncitation = "c"\nfile = "f"\nreproduces = "r"\n'
    '[protocol]\nmodels = "m"\n[[table]]\nid = "a"\ntitle = "A"\nrows = ["model"]\n'
    '[[table.runs]]\nexperiment = "eval-sr"\n'
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('why = ["its rows agree within a few tenths of a dB"]', "claims a relation"),
        ('why = ["so the clean column reads higher"]', "claims a relation"),
        ('why = ["the text in ../shared/papers is the slides"]', "development path"),
        ('claims = [{ text = "x" }]', "a claim needs checks"),
        ('claims = [{ text = "x", checks = [{ kind = "spread" }] }]', "needs max or min"),
        ('claims = [{ text = "x", checks = [{ kind = "compare" }] }]', "one of than and value"),
        (
            'claims = [{ text = "x", checks = [{ kind = "best", cells = { table = "zz" } }] }]',
            "a claim on no table 'zz'",
        ),
    ],
)
def test_a_spec_refuses_unchecked_claims_and_development_paths(extra: str, message: str) -> None:
    text = _BASE.replace('rows = ["model"]\n', f'rows = ["model"]\n{extra}\n')
    with pytest.raises(InputError, match=message):
        parse_paper(tomllib.loads(text))
    assert parse_paper(tomllib.loads(_BASE)).tables[0].claims == []


def _labels(table: Any, paper: Any) -> tuple[set[str], set[str]]:
    """The row and column labels a table can print (paper size, stand-ins, published)."""
    res = Resources("paper", {}, {}, Path("/tmp/advsr-w"))
    rows = {p.row for p in table.published}
    cols = {p.col for p in table.published}
    tr = expand_table(table, paper, res)
    for cell in tr.measured:
        metrics = _metrics(tr.table, cell) if METRIC in table.rows + table.cols else [("", None)]
        for _, lab in metrics:
            rows.add(_label(cell, table.rows, lab))
            cols.add(_label(cell, table.cols, lab))
    return rows, cols


def test_every_claim_names_rows_and_columns_its_table_has() -> None:
    from fnmatch import fnmatchcase

    for key in paper_keys():
        paper = load_paper(key)
        for t in paper.tables:
            for claim in t.claims:
                for check in claim.checks:
                    for cells in (check.cells, check.than):
                        if cells is None:
                            continue
                        rows, cols = _labels(paper.table(cells.table or t.id), paper)
                        for pats, labels in ((cells.rows, rows), (cells.cols, cols)):
                            hit = any(fnmatchcase(lab, p) for p in pats for lab in labels)
                            assert hit, (key, t.id, claim.text, pats, sorted(labels)[:8])


def _printed(key: str) -> str:
    """Everything ``advsr reproduce KEY`` prints from the recipe, without running a cell."""
    paper = load_paper(key)
    res = Resources("quick", {}, {}, Path("/tmp/advsr-w"))
    runs = [expand_table(t, paper, res) for t in paper.tables]
    doc = paper_document(paper, runs, None, res)
    text = [json.dumps(doc, ensure_ascii=False), *paper.notes, paper.title, paper.citation]
    for t in paper_tables(doc):
        text += [t.title, *t.header, *(str(c) for row in t.rows for c in row), *t.notes]
    return "\n".join(text)


def test_no_user_facing_output_names_a_development_path(cli) -> None:
    outputs = [_printed(key) for key in paper_keys()]
    outputs += [cli("reproduce", "--list").out, cli("reproduce", "--list", "--json").out]
    outputs += [cli("reproduce", "--help").out]
    for out in outputs:
        for bad in ("../shared", "/work/", *DEV_PATHS):
            assert bad not in out, (bad, out[out.find(bad) - 200 : out.find(bad) + 100])
