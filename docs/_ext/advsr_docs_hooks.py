"""MkDocs hooks for the advsr site (``hooks:`` in mkdocs.yml; this folder is not a page).

* ``on_config`` puts this folder on ``sys.path``, so that the CLI reference
  (``docs/cli.md``) can name :mod:`advsr_cli_command` in its ``::: mkdocs-click`` block.
* ``on_page_markdown`` replaces a line ``<!-- advsr-paper: KEY -->`` with what the packaged
  paper spec ``src/advsr/papers/KEY.toml`` says (protocol, models and data slots with their
  stand-ins, each table with its why-lines and published numbers, figures, notes), so the
  paper pages cannot drift from the data ``advsr reproduce`` runs.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)
_MARKER = re.compile(r"^<!-- advsr-paper: ([a-z0-9-]+) -->$", re.MULTILINE)


def on_config(config: Any) -> Any:
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    return config


def _text(s: str) -> str:
    """Plain text from a TOML string, safe in Markdown prose and table cells."""
    s = html.escape(s, quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", s)


def _number(v: float) -> str:
    return f"{v:g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def paper_markdown(key: str) -> str:
    from advsr.reproduce.spec import load_paper

    p = load_paper(key)
    md: list[str] = [
        f"## What `src/advsr/papers/{key}.toml` says",
        "",
        "This section is generated from the paper spec that `advsr reproduce` runs.",
        "",
        f"**Paper.** {_text(p.title)}. {_text(p.citation)}.",
        "",
        f"**Reproduced here.** {_text(p.reproduces)}.",
        "",
        "### The paper's protocol",
        "",
    ]
    protocol = [[_text(k), _text(v)] for k, v in p.protocol.items()]
    md += _table(["", "as the paper states it"], protocol)
    if p.models:
        md += ["### Models", ""]
        rows = []
        for name, m in p.models.items():
            if not m.arch:
                have = "not available here"
            elif not m.needs_weights:
                have = f"`{m.arch}` (no weights needed)"
            else:
                have = f"`{m.arch}` with `--weights {name}=FILE`"
            alt = f"stand-in `{m.stand_in}`" if m.stand_in else "row says: weights not given"
            if not m.needs_weights:
                alt = "-"
            rows.append([_text(m.label), have, alt, _text(m.note)])
        md += _table(["paper model", "here", "without weights", "note"], rows)
    if p.data:
        md += ["### Data slots", ""]
        rows = []
        for name, d in p.data.items():
            clf = f"`{d.model}`" if d.model else "-"
            if d.needs_weights:
                clf += f" (`--weights {d.model}=FILE`)"
            if d.stand_in is None:
                alt = "cells left out"
            else:
                alt = f"`{d.stand_in.data}`"
                if d.stand_in.model:
                    alt += f" with `{d.stand_in.model}`"
                alt += f": {_text(d.stand_in.note)}"
            rows.append([f"`--data {name}=...`", _text(d.label), _text(d.help), clf, alt])
        md += _table(["slot", "paper's data", "what to pass", "classifier", "without it"], rows)
    if p.expand:
        md += [
            "### SR stages",
            "",
            "`--weights NAME=FILE` for any SR zoo model (one file for every scale it fits, as "
            "CARN-M's) or `NAME@xS=FILE` (one scale's file, as IMDN's) adds one row per model "
            "and scale to every table whose grid names the stage (`*NAME`), labelled with the "
            "model, the scale and the weights' short SHA-256; without any, the stand-in rows.",
            "",
        ]
        rows = [
            [
                f"`*{name}`",
                ", ".join(f"x{s}" for s in e.scales),
                f"`{e.value}`",
                _text(e.label),
                "; ".join(_text(d.label) for d in e.default),
            ]
            for name, e in p.expand.items()
        ]
        md += _table(["stage", "scales", "defense spec", "row label", "without weights"], rows)
    md += ["### Tables", ""]
    for t in p.tables:
        md += [f"#### `{t.id}`: {_text(t.title)}", ""]
        if t.source:
            md += [f"Paper source: {_text(t.source)}.", ""]
        if t.why:
            md += ["Why ours may differ (printed under the table):", ""]
            md += [f"- {_text(w)}" for w in t.why] + [""]
        if t.claims:
            md += [
                "Claims, each checked against the run's own rows and printed only as they "
                "hold (else rewritten with the numbers):",
                "",
            ]
            md += [f"- {_text(c.text)}" for c in t.claims] + [""]
        if t.published:
            rows_order: list[str] = []
            cols_order: list[str] = []
            cell: dict[tuple[str, str], float] = {}
            for pub in t.published:
                if pub.row not in rows_order:
                    rows_order.append(pub.row)
                if pub.col not in cols_order:
                    cols_order.append(pub.col)
                cell[(pub.row, pub.col)] = pub.value
            unit = f" ({_text(t.unit)})" if t.unit else ""
            md += [f"Published numbers{unit}, {len(t.published)} values:", ""]
            header = ["", *(_text(c) for c in cols_order)]
            body = [
                [_text(r), *(_number(cell[(r, c)]) if (r, c) in cell else "" for c in cols_order)]
                for r in rows_order
            ]
            md += _table(header, body)
        else:
            md += ["The paper prints no number for this table: ours are shown alone.", ""]
    if p.figures:
        md += ["### Figures", ""]
        for f in p.figures:
            src = f" ({_text(f.source)})" if f.source else ""
            md.append(f"- {_text(f.title)}{src}: drawn from table `{f.table}`.")
        md.append("")
    if p.notes:
        md += ["### Notes", ""]
        md += [f"- {_text(n)}" for n in p.notes] + [""]
    return "\n".join(md)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _MARKER.sub(lambda m: paper_markdown(m.group(1)), markdown)
