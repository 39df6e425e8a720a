"""A self-contained HTML report (tables and inline PNG images), written from results only."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from advsr.io import encode_png

__all__ = ["Figure", "ReportTable", "write_report"]


@dataclass(frozen=True)
class ReportTable:
    """A titled table: header row and body rows (already formatted strings)."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Figure:
    """Images shown side by side with captions (each ``(1, 3, H, W)`` in [0, 1])."""

    title: str
    images: Sequence[tuple[str, torch.Tensor]]


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0 2em; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; text-align: center; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
"""


def write_report(
    path: str | Path,
    title: str,
    intro: str,
    tables: Sequence[ReportTable],
    figures: Sequence[Figure],
) -> Path:
    """Write one HTML file with every table and figure inline; returns its path."""
    e = html.escape
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{_CSS}</style><h1>{e(title)}</h1><p>{e(intro)}</p>",
    ]
    for t in tables:
        parts.append(f"<h2>{e(t.title)}</h2><table><tr>")
        parts.extend(f"<th>{e(h)}</th>" for h in t.header)
        parts.append("</tr>")
        for row in t.rows:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    for f in figures:
        parts.append(f"<h2>{e(f.title)}</h2><div>")
        for caption, img in f.images:
            data = base64.b64encode(encode_png(img)).decode()
            h, w = img.shape[-2:]
            scale = max(1, 256 // max(h, w))
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' width='{w * scale}' "
                f"height='{h * scale}'><figcaption>{e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(parts), encoding="utf-8")
    return p
