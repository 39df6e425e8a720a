"""A self-contained HTML report (tables and inline PNG images), written from results only."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from advsr.io import encode_png

__all__ = [
    "Figure",
    "Plot",
    "ReportTable",
    "Scatter3D",
    "fmt",
    "plot_svg",
    "provenance_html",
    "scatter3d_svg",
    "write_report",
]


def fmt(v: object, digits: int = 4) -> str:
    """A table cell: ``-`` for None, floats with ``digits`` decimals, the rest as text.

    Example:
        >>> fmt(None), fmt(3.14159, 2), fmt(float("inf"), 2), fmt("x")
        ('-', '3.14', 'inf', 'x')
    """
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


@dataclass(frozen=True)
class ReportTable:
    """A titled table: header row, body rows (already formatted strings) and notes shown
    under it."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class Figure:
    """Images shown side by side with captions (each ``(1, 3, H, W)`` in [0, 1], or PNG
    bytes as stored with a cell)."""

    title: str
    images: Sequence[tuple[str, torch.Tensor | bytes]]


@dataclass(frozen=True)
class Plot:
    """A line chart: named series of ``(x, y)`` points, drawn as inline SVG."""

    title: str
    xlabel: str
    ylabel: str
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]]
    ylim: tuple[float, float] | None = (0.0, 1.0)


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _plot_span(plot: Plot) -> tuple[float, float, float, float]:
    """The axes' ends ``(x0, x1, y0, y1)``: the points' extent (half a unit either side of a
    single x), y padded by 8% unless the plot fixes ``ylim``."""
    pts = [p for _, ser in plot.series for p in ser]
    xs = [p[0] for p in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x0 + 0.5
    if plot.ylim is not None:
        y0, y1 = plot.ylim
    else:
        ys = [p[1] for p in pts] or [0.0, 1.0]
        y0, y1 = min(ys), max(ys)
        pad = 0.08 * (y1 - y0) if y1 > y0 else 0.5  # no point on the frame
        y0, y1 = y0 - pad, y1 + pad
    return x0, x1, y0, y1


def _plot_series(
    name: str,
    ser: Sequence[tuple[float, float]],
    colour: str,
    points_only: bool,
    sx: Callable[[float], float],
    sy: Callable[[float], float],
    lx: float,
    ly: float,
) -> list[str]:
    """One series of :func:`plot_svg`: its line and markers (or its labelled points when
    every series has one point) and its legend line at ``(lx, ly)``, the plot's right edge.

    Args:
        name: the series' name (legend).
        ser: its ``(x, y)`` points.
        colour: its colour.
        points_only: draw labelled points, no line (every series has at most one point).
        sx: x value -> pixel.
        sy: y value -> pixel.
        lx: the plot area's right edge (the legend starts there).
        ly: the legend line's y pixel.
    """
    e = html.escape
    c = colour
    if points_only:  # labelled points: one measurement is not a curve
        out = [
            f"<circle cx='{sx(a):.1f}' cy='{sy(b):.1f}' r='4' fill='{c}'/>"
            f"<text x='{sx(a) + 7:.1f}' y='{sy(b) + 4:.1f}' fill='{c}'>{b:.4g}</text>"
            for a, b in ser
        ]
        out.append(
            f"<circle cx='{lx + 19}' cy='{ly}' r='4' fill='{c}'/>"
            f"<text x='{lx + 32}' y='{ly + 4}'>{e(name)}</text>"
        )
        return out
    path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in sorted(ser))
    out = [f"<polyline points='{path}' fill='none' stroke='{c}' stroke-width='1.5'/>"]
    out.extend(f"<circle cx='{sx(a):.1f}' cy='{sy(b):.1f}' r='2.5' fill='{c}'/>" for a, b in ser)
    out.append(
        f"<line x1='{lx + 10}' x2='{lx + 28}' y1='{ly}' y2='{ly}' "
        f"stroke='{c}' stroke-width='2'/><text x='{lx + 32}' y='{ly + 4}'>"
        f"{e(name)}</text>"
    )
    return out


def plot_svg(plot: Plot, width: int = 480, height: int = 300) -> str:
    """The plot as a standalone SVG element (axes, ticks, lines, markers, legend)."""
    e = html.escape
    x0, x1, y0, y1 = _plot_span(plot)
    points_only = all(len(ser) <= 1 for _, ser in plot.series)  # a series of one point
    left, right, top, bottom = 56, 150, 28, 44
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + (1 - (v - y0) / (y1 - y0)) * ph

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"font-size='11' font-family='sans-serif'>",
        f"<text x='{left}' y='16' font-size='13'>{e(plot.title)}</text>",
        f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#888'/>",
    ]
    for t in _ticks(x0, x1):
        out.append(f"<text x='{sx(t):.1f}' y='{top + ph + 14}' text-anchor='middle'>{t:.3g}</text>")
    for t in _ticks(y0, y1):
        out.append(f"<text x='{left - 4}' y='{sy(t) + 4:.1f}' text-anchor='end'>{t:.3g}</text>")
        out.append(
            f"<line x1='{left}' x2='{left + pw}' y1='{sy(t):.1f}' y2='{sy(t):.1f}' stroke='#eee'/>"
        )
    out.append(
        f"<text x='{left + pw / 2}' y='{height - 8}' text-anchor='middle'>{e(plot.xlabel)}</text>"
    )
    out.append(
        f"<text transform='translate(14 {top + ph / 2}) rotate(-90)' text-anchor='middle'>"
        f"{e(plot.ylabel)}</text>"
    )
    for k, (name, ser) in enumerate(plot.series):
        colour, ly = _COLOURS[k % len(_COLOURS)], top + 10 + 16 * k
        out += _plot_series(name, ser, colour, points_only, sx, sy, left + pw, ly)
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Scatter3D:
    """Named groups of 3-D points, drawn as an oblique projection in inline SVG."""

    title: str
    groups: Sequence[tuple[str, Sequence[tuple[float, float, float]]]]
    labels: tuple[str, str, str] = ("PC1", "PC2", "PC3")


def scatter3d_svg(plot: Scatter3D, width: int = 420, height: int = 360) -> str:
    """The 3-D scatter as an SVG element: axes from the centroid, z drawn at 30 degrees."""
    e = html.escape
    pts = [p for _, g in plot.groups for p in g]
    if not pts:
        return ""
    lo = [min(p[i] for p in pts) for i in range(3)]
    hi = [max(p[i] for p in pts) for i in range(3)]
    span = [max(h - lo_, 1e-12) for lo_, h in zip(lo, hi, strict=True)]
    cz, sz = 0.45 * 0.866, 0.45 * 0.5

    def proj(p: tuple[float, float, float]) -> tuple[float, float]:
        u = [(p[i] - lo[i]) / span[i] for i in range(3)]
        x = 60 + (u[0] + cz * u[2]) * (width - 180) / (1 + cz)
        y = height - 40 - (u[1] + sz * u[2]) * (height - 80) / (1 + sz)
        return x, y

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "font-size='11' font-family='sans-serif'>",
        f"<text x='10' y='16' font-size='13'>{e(plot.title)}</text>",
    ]
    origin = proj((lo[0], lo[1], lo[2]))
    for axis in range(3):
        end = [lo[0], lo[1], lo[2]]
        end[axis] = hi[axis]
        ex, ey = proj((end[0], end[1], end[2]))
        out.append(
            f"<line x1='{origin[0]:.1f}' y1='{origin[1]:.1f}' x2='{ex:.1f}' y2='{ey:.1f}' "
            f"stroke='#999'/><text x='{ex + 3:.1f}' y='{ey:.1f}'>{e(plot.labels[axis])}</text>"
        )
    for k, (name, g) in enumerate(plot.groups):
        c = _COLOURS[k % len(_COLOURS)]
        for p in g:
            x, y = proj(p)
            out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2' fill='{c}' fill-opacity='0.6'/>")
        out.append(
            f"<circle cx='{width - 110}' cy='{30 + 16 * k}' r='4' fill='{c}'/>"
            f"<text x='{width - 100}' y='{34 + 16 * k}'>{e(name)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0 2em; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; text-align: center; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
ul.notes { margin: -1.5em 0 2em; color: #555; font-size: 90%; }
table.provenance th, table.provenance td { text-align: left; white-space: pre-wrap; }
"""


def _png_size(png: bytes) -> tuple[int, int]:
    """``(height, width)`` from a PNG header."""
    import struct

    w, h = struct.unpack(">II", png[16:24])
    return h, w


def provenance_html(lines: Mapping[str, str]) -> str:
    """A provenance block (label -> text: version, commit, command, hashes, device, date)."""
    e = html.escape
    rows = "".join(
        f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in lines.items()
    )
    return f"<h2>Provenance</h2><table class='provenance'>{rows}</table>"


def write_report(
    path: str | Path,
    title: str,
    intro: str,
    tables: Sequence[ReportTable],
    figures: Sequence[Figure],
    plots: Sequence[Plot | Scatter3D] = (),
    *,
    provenance: Mapping[str, str] | None = None,
) -> Path:
    """Write one HTML file with every table, plot and figure inline, and the ``provenance``
    block when given (see :func:`provenance_html`); returns its path."""
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
        if t.notes:
            parts.append("<ul class='notes'>" + "".join(f"<li>{e(n)}</li>" for n in t.notes))
            parts.append("</ul>")
    if plots:
        svgs = (plot_svg(p) if isinstance(p, Plot) else scatter3d_svg(p) for p in plots)
        parts.append("<div>" + "".join(svgs) + "</div>")
    for f in figures:
        parts.append(f"<h2>{e(f.title)}</h2><div>")
        for caption, img in f.images:
            png = img if isinstance(img, bytes) else encode_png(img)
            data = base64.b64encode(png).decode()
            h, w = _png_size(png)
            scale = max(1, 256 // max(h, w))
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' width='{w * scale}' "
                f"height='{h * scale}'><figcaption>{e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    if provenance:
        parts.append(provenance_html(provenance))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(parts), encoding="utf-8")
    return p
