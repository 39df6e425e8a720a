"""The headline score and the ranking (pure arithmetic on the stored means).

**Headline score** of an entry at a scale: the mean, over the protocol's basic-attack budgets
alpha, of the SR PSNR (RGB, dB) between the SR output of the attacked input and the SR output
of the clean input (each budget's value is the mean over the images). Higher means the output
moves less under attack: more robust. A budget without a finished value makes the score
missing.

**Ranking**, per scale: by score, highest first. Scores equal to the shown precision
(``round(score, 2)``) share a rank (competition ranking: 1, 1, 3) and are listed by name.
Entries without a score are not ranked (rank None, shown as ``-``) and come last.

Example:
    >>> headline_score({"2/255": 40.0, "8/255": 30.5}, ["2/255", "8/255"])
    35.25
    >>> headline_score({"2/255": 40.0}, ["2/255", "8/255"]) is None
    True
    >>> rows = [{"entry": "b", "score": 30.0}, {"entry": "a", "score": 30.001},
    ...         {"entry": "c", "score": None}, {"entry": "d", "score": 31.0}]
    >>> [(r["entry"], r["rank"]) for r in rank_rows(rows)]
    [('d', 1), ('a', 2), ('b', 2), ('c', None)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TIE_DIGITS", "headline_score", "rank_rows"]

TIE_DIGITS = 2
"""Scores that agree to this many decimals (dB) tie."""


def headline_score(values: Mapping[str, float | None], alphas: Sequence[str]) -> float | None:
    """The mean of ``values`` over ``alphas`` (see the module docstring).

    Args:
        values: the mean SR PSNR (dB) per budget label (``"8/255"``).
        alphas: the protocol's budget labels.

    Returns:
        The score in dB; None when a budget has no value, or a value is NaN.
    """
    if not alphas:
        return None
    got = [values.get(a) for a in alphas]
    if any(v is None or math.isnan(v) for v in got):
        return None
    return sum(float(v) for v in got if v is not None) / len(got)


def rank_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of one scale with a ``rank``, in ranking order (see the module docstring).

    Args:
        rows: each with ``entry`` (its name) and ``score`` (float or None).

    Returns:
        New dicts: ranked rows by score (ties by name), then unranked rows by name.
    """

    def key(r: Mapping[str, Any]) -> float:
        return round(float(r["score"]), TIE_DIGITS)

    scored = [dict(r) for r in rows if r.get("score") is not None]
    missing = [dict(r) for r in rows if r.get("score") is None]
    scored.sort(key=lambda r: (-key(r), str(r["entry"])))
    for r in scored:
        r["rank"] = 1 + sum(key(o) > key(r) for o in scored)
    for r in missing:
        r["rank"] = None
    return scored + sorted(missing, key=lambda r: str(r["entry"]))
