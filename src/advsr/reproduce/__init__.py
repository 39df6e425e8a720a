"""``advsr reproduce``: one command per seed paper, its tables next to the published numbers.

A paper is data (``advsr/papers/<key>.toml``, see :mod:`advsr.reproduce.spec`): the
registered experiments and grids that make each table, the published numbers with their
source, the paper's protocol and the stand-ins used where its models or data cannot be had
here. :func:`reproduce` runs every cell through the result store (a second run reads them
back; an interrupted ``--size paper`` run resumes) and returns the document, the tables and
the figures.

Example:
    >>> [k for k in paper_keys()]
    ['badrefsr', 'input-transformations', 'pgap', 'sr-attacks', 'sr-defense']
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advsr.engine.backend import Backend
from advsr.engine.store import ResultStore
from advsr.report import Figure, Plot, ReportTable, Scatter3D
from advsr.reproduce.engine import Resources, check_resources, run_paper
from advsr.reproduce.render import paper_document, paper_figures, paper_tables
from advsr.reproduce.spec import PaperSpec, Size, load_paper, paper_keys

__all__ = ["PaperSpec", "Reproduction", "load_paper", "paper_keys", "paper_list", "reproduce"]


@dataclass(frozen=True)
class Reproduction:
    """What a reproduction shows: the JSON document, the tables, plots and figures, and the
    provenance of its cells (:func:`advsr.provenance.of_cells`)."""

    doc: dict[str, Any]
    tables: list[ReportTable]
    plots: list[Plot | Scatter3D]
    figures: list[Figure]
    provenance: dict[str, Any] = field(default_factory=dict)


def paper_list() -> list[dict[str, str]]:
    """One entry per packaged paper: key, title, what it reproduces."""
    return [
        {"key": p.key, "title": p.title, "reproduces": p.reproduces}
        for p in (load_paper(k) for k in paper_keys())
    ]


def reproduce(
    key: str,
    store: ResultStore,
    *,
    size: Size = "quick",
    data: Mapping[str, str] | None = None,
    weights: Mapping[str, str] | None = None,
    tables: Sequence[str] | None = None,
    progress: bool | None = None,
    backend: Backend | None = None,
) -> Reproduction:
    """Run (or read back) every table of paper ``key`` at ``size``.

    Args:
        key: the paper (:func:`paper_keys`).
        store: the result store.
        size: ``quick`` or ``paper``.
        data: data slot -> folder (``--data imagenet=DIR``).
        weights: paper model or classifier -> weight file (``--weights edsr=FILE``).
        tables: only these tables (by id) and their figures; None: all.
        backend: where the cells run (None: here; see :mod:`advsr.engine.backend`).
        progress: progress bars (None: when stderr is a terminal).

    Raises:
        AdvsrError: unknown paper, slot or model, missing paths, an invalid cell (before any
            work).
    """
    paper = load_paper(key)
    if tables:
        paper = paper.only(tables)
    with tempfile.TemporaryDirectory(prefix="advsr-reproduce-") as work:
        res = Resources(size, dict(data or {}), dict(weights or {}), Path(work))
        check_resources(paper, res)
        runs = run_paper(paper, res, store, progress=progress, backend=backend)
        doc = paper_document(paper, runs, store, res)
        plots, figures = paper_figures(paper, doc, runs, store)
    from advsr.provenance import of_cells

    prov = of_cells([cr for t in runs for _, cr in t.runs])
    return Reproduction(doc, paper_tables(doc), plots, figures, prov)
