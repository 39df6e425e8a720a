"""The experiment driver: runs pure cells and is the only writer of the result store.

A cell function takes the names of images already stored and yields
:class:`CellRow` objects for the others; it never touches the store. The driver writes each
row the moment it arrives (so an interrupted run loses nothing already computed), marks the
cell finished when every expected image is stored, and skips finished cells entirely. The
same cell function can later run on a remote worker unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from advsr.experiments.store import ResultStore
from advsr.progress import progress_bar

__all__ = ["CellResult", "CellRow", "run_cell"]


@dataclass(frozen=True)
class CellRow:
    """One image's result in a cell."""

    idx: int
    image: str
    metrics: Mapping[str, Any]
    seconds: float


@dataclass(frozen=True)
class CellResult:
    """What :func:`run_cell` did: the cell id, its rows (read back from the store: ``image``,
    the metrics, ``seconds``), how many were computed now and how many were already stored,
    and ``mean``: the mean over images of every float metric (integers such as image sizes
    and the timing are left out)."""

    cell_id: str
    rows: list[dict[str, Any]]
    computed: int
    skipped: int

    @property
    def mean(self) -> dict[str, float]:
        if not self.rows:
            return {}
        keys = [k for k, v in self.rows[0].items() if isinstance(v, float) and k != "seconds"]
        return {k: sum(float(r[k]) for r in self.rows) / len(self.rows) for k in keys}


def run_cell(
    store: ResultStore,
    experiment: str,
    config: Mapping[str, Any],
    images: Sequence[str],
    compute: Callable[[set[str]], Iterator[CellRow]],
    *,
    description: str = "",
    progress: bool | None = None,
) -> CellResult:
    """Run one cell with resume: skip stored images, store each new row at once.

    Args:
        store: the result store.
        experiment: experiment name (``"eval-sr"``...).
        config: the cell's full configuration (identifies it).
        images: names of all images the cell covers.
        compute: the pure cell function ``skip -> rows`` for images not in ``skip``.
        description: progress bar text.
        progress: show a bar (``None``: when stderr is a terminal).
    """
    cid = store.begin_cell(experiment, config, n_expected=len(images))
    done = store.done_images(cid) if not store.is_finished(cid) else set(images)
    todo = [n for n in images if n not in done]
    computed = 0
    if todo:
        with progress_bar(len(todo), description or experiment, progress) as bar:
            for row in compute(set(done)):
                store.add_row(cid, row.idx, row.image, row.metrics, row.seconds)
                computed += 1
                bar.advance()
    if not store.is_finished(cid) and store.done_images(cid) >= set(images):
        store.finish_cell(cid)
    return CellResult(cell_id=cid, rows=store.cell_rows(cid), computed=computed, skipped=len(done))
