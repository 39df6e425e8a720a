"""The leaderboard as a static site: plain HTML, inline JavaScript and SVG, embedded images.

``index.html`` holds the sortable, filterable table of every entry at every scale, all
entries' SR-PSNR-over-alpha curves on one plot, the transferability matrices and the
provenance block; ``models/<entry>.html`` one page per entry (its numbers, its curves, the
transfer row and column, the image strips); ``leaderboard.json`` the document. Nothing is
fetched at view time (no network, no CDN): the pages open from a file system.

Example:
    >>> svg = curves_svg("t", [Series("a", [(1, 40.0), (8, 30.0)])], "SR PSNR (dB)")
    >>> svg.startswith("<svg") and "polyline" in svg
    True
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advsr.jsonutil import json_safe
from advsr.leaderboard.build import Leaderboard
from advsr.provenance import provenance_lines
from advsr.report import fmt, provenance_html

__all__ = ["Series", "curves_svg", "index_html", "model_html", "write_site"]

_PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip
_DASH = {4: "", 2: "7 4", 3: "2 3", 8: "9 3 2 3"}
_MARKERS = ("circle", "square", "diamond")

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; }
p.lead { color: #444; max-width: 70em; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
#board th { white-space: normal; min-width: 3em; vertical-align: bottom; }
#board th, #board td { padding: 2px 5px; font-size: 12px; }
td.l, th.l { text-align: left; }
#board th { cursor: pointer; user-select: none; }
#board th[aria-sort=ascending]::after { content: " \\25B2"; }
#board th[aria-sort=descending]::after { content: " \\25BC"; }
#board tr.missing td { color: #999; }
.controls { margin: 0.8em 0; } .controls input, .controls select { margin-right: 1em; }
.scroll { overflow-x: auto; }
figure { display: inline-block; margin: 0 0.8em 0.8em 0; text-align: center; font-size: 12px; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
code.sha { font-size: 11px; }
table.provenance th, table.provenance td { text-align: left; white-space: pre-wrap; }
.note { color: #666; font-size: 90%; }
"""

_JS = """
(function () {
  var table = document.getElementById('board');
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var state = { col: -1, dir: 1 };
  function value(row, i) {
    var c = row.cells[i];
    return c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent.trim();
  }
  function sortBy(i) {
    var dir = state.col === i ? -state.dir : 1;
    var num = heads[i].getAttribute('data-type') === 'num';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, i), y = value(b, i);
      if (x === '' || y === '') { return (x === '') - (y === ''); }
      var d = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return dir * (d || 0);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var k = 0; k < heads.length; k++) { heads[k].removeAttribute('aria-sort'); }
    heads[i].setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
    state = { col: i, dir: dir };
  }
  for (var i = 0; i < heads.length; i++) {
    heads[i].addEventListener('click', sortBy.bind(null, i));
  }
  var filter = document.getElementById('filter');
  var scale = document.getElementById('scale');
  function apply() {
    var q = filter.value.trim().toLowerCase();
    var s = scale.value;
    Array.prototype.forEach.call(body.rows, function (r) {
      var ok = (!q || r.getAttribute('data-entry').toLowerCase().indexOf(q) >= 0) &&
               (!s || r.getAttribute('data-scale') === s);
      r.hidden = !ok;
    });
  }
  filter.addEventListener('input', apply);
  scale.addEventListener('change', apply);
})();
"""


@dataclass(frozen=True)
class Series:
    """One curve: ``(alpha, dB)`` points (alpha in 1/255 units), drawn with a colour index,
    a dash pattern, and a line (or markers alone)."""

    label: str
    points: Sequence[tuple[float, float]]
    colour: int = 0
    dash: str = ""
    line: bool = True
    marker: str = "circle"


def _e(v: object) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape(str(v), quote=True)


def _page(title: str, body: str, *, script: bool = False) -> str:
    js = f"<script>{_JS}</script>" if script else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<link rel='icon' href='data:,'><title>{_e(title)}</title><style>{_CSS}</style>"
        f"</head><body>{body}{js}</body></html>"
    )


def _marker(kind: str, x: float, y: float, colour: str, tip: str) -> str:
    t = f"<title>{_e(tip)}</title>"
    if kind == "square":
        return (
            f"<rect x='{x - 3.5:.1f}' y='{y - 3.5:.1f}' width='7' height='7' fill='{colour}'>"
            f"{t}</rect>"
        )
    if kind == "diamond":
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f"<polygon points='{pts}' fill='{colour}'>{t}</polygon>"
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{colour}'>{t}</circle>"


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``raw`` (tick spacing).

    Example:
        >>> _nice_step(3.7), _nice_step(0.13), _nice_step(12.0)
        (5.0, 0.2, 20.0)
    """
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    p = 10.0 ** math.floor(math.log10(raw))
    return next(m * p for m in (1.0, 2.0, 5.0, 10.0) if m * p >= raw - 1e-12)


def curves_svg(
    title: str,
    series: Sequence[Series],
    ylabel: str,
    *,
    legend: Sequence[tuple[str, str, str] | tuple[str, str, str, str]] = (),
    width: int = 760,
    height: int = 380,
) -> str:
    """Curves over the budget alpha as an inline SVG: a log2 alpha axis labelled ``k/255``,
    a dB axis, markers with tooltips, and a legend.

    Args:
        title: the plot's title.
        series: the curves (points ``(alpha in 1/255, dB)``; non-finite values skipped).
        ylabel: the y axis label.
        legend: legend lines ``(label, colour, dash)`` (e.g. what a dash means) or
            ``(label, colour, "", marker)`` (a marker alone); by default one line per series.
        width: SVG width (pixels).
        height: SVG height (pixels).
    """
    pts = [(a, v) for s in series for a, v in s.points if math.isfinite(v) and a > 0]
    left, right, top, bottom = 60, 210, 30, 46
    pw, ph = width - left - right, height - top - bottom
    xs = sorted({a for a, _ in pts}) or [1.0]
    y0, y1, step = _db_span([v for _, v in pts] or [0.0, 1.0])
    frame = _Frame(left, top, pw, ph, *_log2_span(xs), y0, y1)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-size='11' font-family='sans-serif' role='img'>",
        f"<text x='{left}' y='18' font-size='13' font-weight='bold'>{_e(title)}</text>",
        f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#888'/>",
    ]
    out += _grid_svg(frame, xs, step)
    out.append(
        f"<text x='{left + pw / 2}' y='{height - 10}' text-anchor='middle'>"
        "alpha (L-inf budget, log scale)</text>"
        f"<text transform='translate(16 {top + ph / 2}) rotate(-90)' text-anchor='middle'>"
        f"{_e(ylabel)}</text>"
    )
    for s in series:
        out += _series_svg(frame, s)
    lines = list(legend) or [(s.label, _PALETTE[s.colour % len(_PALETTE)], s.dash) for s in series]
    out += _legend_svg(frame, lines)
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class _Frame:
    """Where :func:`curves_svg` draws: the plot area (pixels: left and top edges, width and
    height) and its scales, log2 alpha across (``lx0`` to ``lx1``), dB up (``y0`` to ``y1``)."""

    left: int
    top: int
    pw: int
    ph: int
    lx0: float
    lx1: float
    y0: float
    y1: float

    def sx(self, a: float) -> float:
        """The x pixel of the budget ``a`` (in 1/255)."""
        return self.left + 12 + (math.log2(a) - self.lx0) / (self.lx1 - self.lx0) * (self.pw - 24)

    def sy(self, v: float) -> float:
        """The y pixel of ``v`` dB."""
        return self.top + (1 - (v - self.y0) / (self.y1 - self.y0)) * self.ph


def _log2_span(xs: Sequence[float]) -> tuple[float, float]:
    """The log2 alpha axis's ends: those of ``xs``, one octave either side of a single one."""
    lx0, lx1 = math.log2(min(xs)), math.log2(max(xs))
    if lx1 - lx0 < 1e-9:
        lx0, lx1 = lx0 - 1, lx1 + 1
    return lx0, lx1


def _db_span(ys: Sequence[float]) -> tuple[float, float, float]:
    """The dB axis: ``(bottom, top, tick step)``, the values padded and rounded out to ticks."""
    y0, y1 = min(ys), max(ys)
    pad = max(0.5, 0.06 * (y1 - y0))
    step = _nice_step((y1 - y0 + 2 * pad) / 6)
    return math.floor((y0 - pad) / step) * step, math.ceil((y1 + pad) / step) * step, step


def _grid_svg(frame: _Frame, xs: Sequence[float], step: float) -> list[str]:
    """The grid lines and tick labels: one per alpha of ``xs``, one every ``step`` dB."""
    sx, sy, left, top, pw, ph = frame.sx, frame.sy, frame.left, frame.top, frame.pw, frame.ph
    out = []
    for a in xs:
        out.append(
            f"<line x1='{sx(a):.1f}' x2='{sx(a):.1f}' y1='{top}' y2='{top + ph}' stroke='#eee'/>"
            f"<text x='{sx(a):.1f}' y='{top + ph + 14}' text-anchor='middle'>{a:g}/255</text>"
        )
    for i in range(round((frame.y1 - frame.y0) / step) + 1):
        v = frame.y0 + i * step
        out.append(
            f"<line x1='{left}' x2='{left + pw}' y1='{sy(v):.1f}' y2='{sy(v):.1f}' "
            f"stroke='#eee'/><text x='{left - 5}' y='{sy(v) + 4:.1f}' text-anchor='end'>"
            f"{v:g}</text>"
        )
    return out


def _series_svg(frame: _Frame, s: Series) -> list[str]:
    """One curve: its line (unless ``s.line`` is off or it has one point) and its markers,
    each with a tooltip (non-finite values and non-positive alphas skipped)."""
    sx, sy = frame.sx, frame.sy
    c = _PALETTE[s.colour % len(_PALETTE)]
    good = sorted((a, v) for a, v in s.points if math.isfinite(v) and a > 0)
    out = []
    if s.line and len(good) > 1:
        path = " ".join(f"{sx(a):.1f},{sy(v):.1f}" for a, v in good)
        dash = f" stroke-dasharray='{s.dash}'" if s.dash else ""
        out.append(f"<polyline points='{path}' fill='none' stroke='{c}' stroke-width='1.8'{dash}/>")
    out.extend(
        _marker(s.marker, sx(a), sy(v), c, f"{s.label}, {a:g}/255: {v:.2f} dB") for a, v in good
    )
    return out


def _legend_svg(
    frame: _Frame, lines: Sequence[tuple[str, str, str] | tuple[str, str, str, str]]
) -> list[str]:
    """The legend right of the plot area: per line ``(label, colour, dash)`` a stroke, or
    per ``(label, colour, "", marker)`` a marker, then the label."""
    left, top, pw = frame.left, frame.top, frame.pw
    out = []
    for k, (label, colour, dash, *marker) in enumerate(lines):
        ly = top + 8 + 16 * k
        d = f" stroke-dasharray='{dash}'" if dash else ""
        if marker:
            out.append(_marker(marker[0], left + pw + 24, ly, colour, label))
        else:
            out.append(
                f"<line x1='{left + pw + 12}' x2='{left + pw + 36}' y1='{ly}' y2='{ly}' "
                f"stroke='{colour}' stroke-width='2'{d}/>"
            )
        out.append(f"<text x='{left + pw + 42}' y='{ly + 4}'>{_e(label)}</text>")
    return out


# ------------------------------------------------------------------------------ pieces


def _num(v: Any) -> str:
    """A sort key for ``data-v`` (empty: missing)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v) if isinstance(v, float) else str(v)


def _td(v: Any, digits: int = 2, cls: str = "") -> str:
    c = f" class='{cls}'" if cls else ""
    return f"<td data-v='{_e(_num(v))}'{c}>{_e(fmt(v, digits))}</td>"


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _intro(doc: Mapping[str, Any]) -> str:
    p = doc["protocol"]
    data = doc["data"]
    crop = "" if p["hr_crop"] is None else f", HR crops of {p['hr_crop']} px"
    quick = (
        " <b>Quick variant</b>: small crops and few steps, for smoke runs; its numbers are "
        "not comparable with the full protocol's."
        if p["quick"]
        else ""
    )
    return (
        f"<p class='lead'>Protocol <b>{_e(p['label'])}</b> on <code>{_e(data['label'])}</code> "
        f"({data['files']} files), scales {', '.join(f'x{s}' for s in p['scales'])}"
        f"{crop}: the basic "
        f"attack (I-FGSM, Choi et al. 2019) at alpha in {{{', '.join(p['alphas'])}}} with "
        f"T = {p['steps']}, reference <code>{_e(p['reference'])}</code>; the universal "
        f"attack <code>{_e(p['universal'])}</code>; APGD-SR <code>{_e(p['apgd'])}</code>. "
        f"Clean PSNR/SSIM on Y against HR (8-bit output, border = scale); attack PSNRs are "
        f"means over the images. <b>Score</b>: {_e(doc['score'])}. Ties (equal to 0.01 dB) "
        f"share a rank; an entry without every value is not ranked (<code>-</code>).{quick}</p>"
    )


def _board_heads(
    doc: Mapping[str, Any], alphas: Sequence[str], t: str
) -> list[tuple[str, str, str]]:
    """The ranking table's columns: ``(name, sort type, tooltip)``; ``t`` is the transfer
    budget, whose basic-attack cell gives the Y and LR columns."""
    return [
        ("rank", "num", "rank within the scale"),
        ("model", "text", ""),
        ("scale", "num", ""),
        ("score (dB)", "num", doc["score"]),
        ("clean PSNR-Y", "num", "clean SR vs HR, Y, dB"),
        ("clean SSIM-Y", "num", "clean SR vs HR, Y"),
        *((f"SR PSNR {a}", "num", f"basic attack {a}: SR vs clean SR, RGB, dB") for a in alphas),
        ("universal", "num", f"SR PSNR (RGB) under {doc['protocol']['universal']}"),
        ("APGD-SR", "num", f"SR PSNR (RGB) under {doc['protocol']['apgd']}"),
        (f"SR-Y {t}", "num", f"basic {t}: SR vs clean SR on Y, dB"),
        (f"SR vs HR-Y {t}", "num", f"basic {t}: attacked SR vs HR, Y, dB"),
        (f"LR PSNR {t}", "num", f"basic {t}: attacked vs clean LR, RGB, dB"),
        ("params", "num", ""),
        ("weights sha256", "text", ""),
        ("protocol", "text", ""),
        ("advsr", "text", ""),
        ("date", "text", ""),
    ]


def _board_row(r: Mapping[str, Any], alphas: Sequence[str], t: str) -> str:
    """One row of the ranking table (the columns of :func:`_board_heads`), greyed out when
    the entry is not ranked."""
    sha = r["weights_sha256"]
    cls = " class='missing'" if r["score"] is None else ""
    tip = f" title='{_e(r['missing'])}'" if r["missing"] else ""
    cells = [
        _td(r["rank"]),
        f"<td class='l' data-v='{_e(r['entry'])}'{tip}><a href='{_e(r['page'])}'>"
        f"{_e(r['entry'])}</a></td>",
        _td(r["scale"]),
        _td(r["score"]),
        _td(_get(r, "clean", "psnr_y")),
        _td(_get(r, "clean", "ssim_y"), 4),
        *(_td(_get(r, "basic", a, "sr_psnr")) for a in alphas),
        _td(_get(r, "universal", "sr_psnr")),
        _td(_get(r, "apgd", "sr_psnr")),
        _td(_get(r, "basic", t, "sr_psnr_y")),
        _td(_get(r, "basic", t, "sr_hr_psnr_y")),
        _td(_get(r, "basic", t, "lr_psnr")),
        _td(r["params"]),
        f"<td class='l' data-v='{_e(sha or '')}' title='{_e(sha or 'no parameters')}'>"
        f"<code class='sha'>{_e(sha[:8] if sha else '-')}</code></td>",
        f"<td class='l'>{_e(r['protocol'])}</td>",
        f"<td class='l'>{_e(r['advsr_version'])}</td>",
        f"<td class='l'>{_e(r['date'])}</td>",
    ]
    return (
        f"<tr{cls} data-entry='{_e(r['entry'])}' data-scale='{r['scale']}'>"
        + "".join(cells)
        + "</tr>"
    )


def _board(doc: Mapping[str, Any]) -> str:
    alphas = doc["protocol"]["alphas"]
    t = doc["protocol"]["transfer"].split("@")[1]
    th = "".join(
        f"<th data-type='{kind}'{' class=l' if kind == 'text' else ''} title='{_e(tip)}'>"
        f"{_e(name)}</th>"
        for name, kind, tip in _board_heads(doc, alphas, t)
    )
    body = [_board_row(r, alphas, t) for r in doc["rows"]]
    scales = "".join(f"<option value='{s}'>x{s}</option>" for s in doc["protocol"]["scales"])
    return (
        "<div class='controls'><label>filter models <input id='filter' type='search' "
        "placeholder='name'></label><label>scale <select id='scale'><option value=''>all"
        f"</option>{scales}</select></label><span class='note'>click a column header to "
        "sort</span></div>"
        f"<div class='scroll'><table id='board'><thead><tr>{th}</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def _alpha_of(label: str) -> float:
    return float(label.split("/")[0])


def _all_curves(doc: Mapping[str, Any]) -> str:
    names = [e["name"] for e in doc["entries"]]
    series = []
    for r in doc["rows"]:
        pts = [
            (_alpha_of(a), float(v["sr_psnr"]))
            for a, v in r["basic"].items()
            if v and v.get("sr_psnr") is not None
        ]
        if pts:
            series.append(
                Series(
                    f"{r['entry']} x{r['scale']}",
                    pts,
                    names.index(r["entry"]),
                    _DASH.get(r["scale"], "4 2 1 2"),
                )
            )
    legend = [(n, _PALETTE[i % len(_PALETTE)], "") for i, n in enumerate(names)]
    legend += [(f"x{s}", "#555", _DASH.get(s, "4 2 1 2")) for s in doc["protocol"]["scales"]]
    return curves_svg(
        "SR PSNR under the basic attack (RGB, attacked vs clean SR output)",
        series,
        "SR PSNR (dB)",
        legend=legend,
        height=max(380, 60 + 16 * len(legend)),
    )


def _shade(v: float | None, lo: float, hi: float) -> str:
    """A cell background: darker for a lower PSNR (an attack that transfers better)."""
    if v is None or not math.isfinite(v) or hi <= lo:
        return ""
    light = 96 - 40 * (hi - v) / (hi - lo)
    return f"background: hsl(210, 65%, {light:.0f}%);"


def _matrix(t: Mapping[str, Any], focus: str | None = None) -> str:
    """One transfer matrix; the ``focus`` entry's row and column headers are marked."""
    vals = [v for row in t["matrix"] for v in row if v is not None and math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)

    def name(n: str) -> str:
        return f"<mark>{_e(n)}</mark>" if n == focus else _e(n)

    head = "".join(f"<th>{name(n)}</th>" for n in t["targets"])
    body = []
    for i, (src, row) in enumerate(zip(t["sources"], t["matrix"], strict=True)):
        tds = []
        for j, v in enumerate(row):
            style = _shade(v, lo, hi) + ("font-weight: bold;" if i == j else "")
            tds.append(f"<td style='{style}'>{_e(fmt(v, 2))}</td>")
        body.append(f"<tr><th class='l'>{name(src)}</th>{''.join(tds)}</tr>")
    return (
        f"<h3>x{t['scale']}, alpha {_e(t['alpha'])}</h3><table class='matrix'>"
        f"<tr><th class='l'>source \\ target</th>{head}</tr>{''.join(body)}</table>"
    )


def _transfer_section(doc: Mapping[str, Any], focus: str | None = None) -> str:
    """Every scale's transfer matrix (on an entry's page: those it is in, marked)."""
    parts = [
        "<h2>Transferability</h2><p class='note'>SR PSNR (dB, RGB) on the target model of the "
        "basic attack crafted on the source model (rows: source, columns: target); lower = "
        "the attack transfers better (darker). The diagonal (bold) is the white-box attack."
        "</p>"
    ]
    for t in doc["transfer"]:
        if t["sources"] and (focus is None or focus in t["sources"]):
            parts.append(_matrix(t, focus))
    return "".join(parts)


# ------------------------------------------------------------------------------ pages


def index_html(doc: Mapping[str, Any]) -> str:
    """The index page (see the module docstring)."""
    body = (
        "<h1>SR robustness leaderboard</h1>"
        + _intro(doc)
        + "<h2>Ranking</h2>"
        + _board(doc)
        + "<h2>SR PSNR over the budget</h2>"
        + _all_curves(doc)
        + _transfer_section(doc)
        + "<h2>Models</h2><ul>"
        + "".join(
            f"<li><a href='{_e(e['page'])}'>{_e(e['name'])}</a> <span class='note'>"
            f"{_e(e['model'])}</span></li>"
            for e in doc["entries"]
        )
        + "</ul><p class='note'>The same data as JSON: <a href='leaderboard.json'>"
        "leaderboard.json</a> (<code>advsr leaderboard --json</code>).</p>"
        + provenance_html(provenance_lines(doc["provenance"]))
    )
    return _page("advsr SR robustness leaderboard", body, script=True)


_METRICS = (
    ("lr_psnr", "LR PSNR"),
    ("sr_psnr", "SR PSNR (RGB)"),
    ("sr_psnr_y", "SR PSNR (Y)"),
    ("sr_hr_psnr", "SR vs HR (RGB)"),
    ("sr_hr_psnr_y", "SR vs HR (Y)"),
    ("sr_hr_psnr_clean", "clean SR vs HR (RGB)"),
)


def _model_tables(doc: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    p = doc["protocol"]
    summary = "".join(
        f"<tr><td>x{r['scale']}</td>{_td(r['rank'])}{_td(r['score'])}"
        f"{_td(_get(r, 'clean', 'psnr_y'))}{_td(_get(r, 'clean', 'ssim_y'), 4)}"
        f"{_td(r['params'])}<td class='l'><code class='sha'>{_e(r['weights_sha256'] or '-')}"
        f"</code></td><td class='l'>{_e(r['missing'] or '')}</td></tr>"
        for r in rows
    )
    out = [
        "<table><tr><th>scale</th><th>rank</th><th>score (dB)</th><th>clean PSNR-Y</th>"
        "<th>clean SSIM-Y</th><th>params</th><th class='l'>weights sha256</th>"
        f"<th class='l'>missing</th></tr>{summary}</table>"
    ]
    head = "".join(f"<th>{_e(n)}</th>" for _, n in _METRICS)
    body = []
    for r in rows:
        if r["missing"]:
            continue
        attacks = [(f"basic@{a}", _get(r, "basic", a)) for a in p["alphas"]]
        attacks += [(p["universal"], r["universal"]), (p["apgd"], r["apgd"])]
        for name, m in attacks:
            body.append(
                f"<tr><td>x{r['scale']}</td><td class='l'><code>{_e(name)}</code></td>"
                + "".join(_td(_get(m, k)) for k, _ in _METRICS)
                + "</tr>"
            )
    out.append(
        "<h2>Under attack</h2><p class='note'>Means over the images (dB). LR: attacked vs "
        "clean input; SR: attacked vs clean SR output; vs HR: attacked SR vs the HR image "
        "(border = scale). The universal attack is measured on the images it was not crafted "
        "on (the second half).</p><table><tr><th>scale</th><th class='l'>attack</th>"
        f"{head}</tr>{''.join(body)}</table>"
    )
    return "".join(out)


def _model_curves(doc: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    p = doc["protocol"]
    shown = (("sr_psnr", "SR vs clean (RGB)"), ("sr_psnr_y", "SR vs clean (Y)"),
             ("sr_hr_psnr_y", "SR vs HR (Y)"), ("lr_psnr", "LR"))  # fmt: skip
    series: list[Series] = []
    for r in rows:
        if r["missing"]:
            continue
        dash = _DASH.get(r["scale"], "4 2 1 2")
        for c, (k, name) in enumerate(shown):
            pts = [
                (_alpha_of(a), float(m[k]))
                for a, m in r["basic"].items()
                if m and m.get(k) is not None
            ]
            series.append(Series(f"{name} x{r['scale']}", pts, c, dash))
        for kind, marker in (("universal", "square"), ("apgd", "diamond")):
            m = r[kind]
            if m and m.get("sr_psnr") is not None:
                a = _alpha_of(p[kind].split("@")[1].split(":")[0])
                label = f"{'universal' if kind == 'universal' else 'APGD-SR'} x{r['scale']}"
                series.append(Series(label, [(a, float(m["sr_psnr"]))], 9, dash, False, marker))
    legend: list[tuple[str, str, str] | tuple[str, str, str, str]]
    legend = [(name, _PALETTE[c], "") for c, (_, name) in enumerate(shown)]
    legend += [
        (f"x{r['scale']}", "#555", _DASH.get(r["scale"], "4 2 1 2"))
        for r in rows
        if not r["missing"]
    ]
    legend += [
        ("universal, SR vs clean (RGB)", _PALETTE[9], "", "square"),
        ("APGD-SR, SR vs clean (RGB)", _PALETTE[9], "", "diamond"),
    ]
    return curves_svg("PSNR over the budget (basic attack)", series, "PSNR (dB)", legend=legend)


def _strips(
    strips: Mapping[int, Sequence[tuple[str, bytes]]], t: str, images: Mapping[str, str]
) -> str:
    """The image strips (one row per scale) as figures with embedded PNGs."""
    out = []
    for s, imgs in strips.items():
        figs = []
        for caption, png in imgs:
            w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            data = base64.b64encode(png).decode()
            figs.append(
                f"<figure><img src='data:image/png;base64,{data}' width='{w}' height='{h}' "
                f"alt='{_e(caption)}'><figcaption>{_e(caption)}</figcaption></figure>"
            )
        out.append(
            f"<h3>x{s}: {_e(images.get(f'x{s}', ''))}, basic@{_e(t)} (centre crop, "
            f"nearest-neighbour upscaled)</h3><div>{''.join(figs)}</div>"
        )
    return "<h2>Images</h2>" + "".join(out) if out else ""


def model_html(
    doc: Mapping[str, Any],
    entry: str,
    strips: Mapping[int, Sequence[tuple[str, bytes]]],
) -> str:
    """The page of one entry (see the module docstring)."""
    info = next(e for e in doc["entries"] if e["name"] == entry)
    rows = [r for r in doc["rows"] if r["entry"] == entry]
    t = doc["protocol"]["transfer"].split("@")[1]
    body = (
        "<p><a href='../index.html'>&larr; leaderboard</a></p>"
        f"<h1>{_e(entry)}</h1><p class='lead'>Model <code>{_e(info['model'])}</code>, "
        f"protocol <b>{_e(doc['protocol']['label'])}</b> on <code>{_e(doc['data']['label'])}"
        "</code>.</p>"
        + _model_tables(doc, rows)
        + "<h2>Curves</h2>"
        + _model_curves(doc, rows)
        + _transfer_section(doc, focus=entry)
        + _strips(strips, t, doc.get("figure_images", {}))
        + provenance_html(provenance_lines(doc["provenance"]))
    )
    return _page(f"{entry}: advsr SR robustness leaderboard", body)


def write_site(lb: Leaderboard, out: str | Path) -> Path:
    """Write the site into the folder ``out`` (created); returns the index page's path.

    Args:
        lb: the built leaderboard.
        out: the folder (existing files of the site are replaced).
    """
    root = Path(out)
    (root / "models").mkdir(parents=True, exist_ok=True)
    doc = lb.doc
    for e in doc["entries"]:
        strips = {s: lb.strips[(n, s)] for (n, s) in lb.strips if n == e["name"]}
        (root / e["page"]).write_text(model_html(doc, e["name"], strips), "utf-8")
    (root / "leaderboard.json").write_text(
        json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n", "utf-8"
    )
    index = root / "index.html"
    index.write_text(index_html(doc), "utf-8")
    return index
