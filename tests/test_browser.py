"""Reports checked in a real browser: the leaderboard site and an experiment report open in
headless Chromium (Debian's ``chromium``, driven by Playwright) with every image loaded, no
console error, a working sortable table, and a screenshot per page.

Needs the ``browser`` extra (``pip install -e '.[browser]'``: Playwright's Python package
only; its own browser downloads are never used) and ``/usr/bin/chromium``; skipped without
them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next(
    (p for p in (os.environ.get("ADVSR_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"))
     if p and Path(p).is_file()),
    None,
)  # fmt: skip
if CHROMIUM is None:
    pytest.skip("no chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[browser]')"
)


def _advsr(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``advsr`` command line in a subprocess (private cache, no progress bars)."""
    env = {
        **os.environ,
        "ADVSR_PROGRESS": "0",
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "ADVSR_STORE": str(tmp / "store.sqlite"),
    }
    res = subprocess.run(
        [sys.executable, "-m", "advsr", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``advsr leaderboard --quick --out DIR``, built once for the module."""
    tmp = tmp_path_factory.mktemp("leaderboard")
    _advsr("leaderboard", "--quick", "--out", str(tmp / "site"), tmp=tmp)
    return tmp / "site"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's), one per module."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        yield b
        b.close()


class Opened:
    """A page opened from a file, with the console errors and page errors it produced."""

    def __init__(self, browser: Any, path: Path, shot: Path) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        self.page.screenshot(path=str(shot), full_page=True)

    def images(self) -> list[dict[str, Any]]:
        """Every ``<img>``: whether it finished loading, its natural width, its alt text."""
        return self.page.evaluate(
            "Array.from(document.images).map(i => "
            "({complete: i.complete, width: i.naturalWidth, alt: i.alt}))"
        )

    def close(self) -> None:
        self.page.close()


def _column(page: Any, header: str) -> list[str]:
    """The ``data-v`` sort values of one column of the leaderboard table, in shown order."""
    return page.evaluate(
        """(h) => {
            const heads = Array.from(document.querySelectorAll('#board thead th'));
            const i = heads.findIndex(th => th.textContent.trim() === h);
            return Array.from(document.querySelectorAll('#board tbody tr'))
                .filter(r => !r.hidden)
                .map(r => r.cells[i].getAttribute('data-v'));
        }""",
        header,
    )


def _numbers(values: list[str]) -> list[float]:
    return [float(v) for v in values if v != ""]


def test_leaderboard_index_in_chromium(site: Path, browser: Any, tmp_path: Path) -> None:
    shot = tmp_path / "index.png"
    page = Opened(browser, site / "index.html", shot)
    try:
        p = page.page
        assert p.title() == "advsr SR robustness leaderboard"
        assert all(i["complete"] and i["width"] > 0 for i in page.images())
        assert p.locator("svg polyline").count() >= 3  # one curve per entry and scale
        assert p.locator("table.matrix").count() == 2  # a transfer matrix per scale
        assert p.locator("table.provenance").count() == 1
        before = _column(p, "score (dB)")
        assert len(before) == 6  # 3 entries x 2 scales
        p.locator("#board thead th", has_text="score (dB)").click()
        up = _numbers(_column(p, "score (dB)"))
        assert up == sorted(up) and _column(p, "score (dB)") != before
        assert p.locator("#board thead th[aria-sort=ascending]").inner_text().startswith("score")
        p.locator("#board thead th", has_text="score (dB)").click()
        down = _numbers(_column(p, "score (dB)"))
        assert down == sorted(down, reverse=True)
        p.locator("#board thead th", has_text="model").first.click()
        names = _column(p, "model")
        assert names == sorted(names)
        p.fill("#filter", "edsr")
        assert set(_column(p, "model")) == {"demo-edsr"}
        p.select_option("#scale", "4")
        assert _column(p, "scale") == ["4"]
        p.fill("#filter", "")
        p.select_option("#scale", "")
        assert len(_column(p, "model")) == 6
        href = p.locator("#board tbody a").first.get_attribute("href")
        assert href is not None and (site / href).is_file()
        assert page.errors == []
        assert shot.stat().st_size > 10_000
    finally:
        page.close()


def test_leaderboard_model_page_in_chromium(site: Path, browser: Any, tmp_path: Path) -> None:
    shot = tmp_path / "demo-edsr.png"
    page = Opened(browser, site / "models" / "demo-edsr.html", shot)
    try:
        imgs = page.images()
        assert len(imgs) == 10  # LR, attacked LR, perturbation, clean SR, attacked SR; x2, x4
        assert all(i["complete"] and i["width"] > 0 for i in imgs), imgs
        assert {i["alt"].split(" ")[0] for i in imgs} >= {"LR", "attacked", "clean"}
        widths = {i["width"] for i in imgs}
        assert min(widths) >= 150  # readable: crops upscaled by nearest neighbour
        assert page.page.locator("svg polyline").count() >= 4
        assert page.page.locator("table.provenance").count() == 1
        back = page.page.locator("a", has_text="leaderboard").first.get_attribute("href")
        assert back == "../index.html"
        assert page.errors == []
    finally:
        page.close()
    for other in sorted((site / "models").glob("*.html")):
        page = Opened(browser, other, tmp_path / f"{other.stem}.png")
        try:
            assert all(i["complete"] and i["width"] > 0 for i in page.images()), other.name
            assert page.errors == [], other.name
        finally:
            page.close()


def test_experiment_report_in_chromium(browser: Any, tmp_path: Path) -> None:
    """An experiment report (tables, SVG curves, a stored figure) renders cleanly."""
    report = tmp_path / "attack.html"
    _advsr(
        "attack-sr", "--model", "bicubic", "--data", "samples", "--scale", "2", "--hr-crop",
        "32", "--steps", "2", "--alpha", "2/255", "--alpha", "8/255", "--show", "chelsea",
        "--report", str(report), tmp=tmp_path,
    )  # fmt: skip
    page = Opened(browser, report, tmp_path / "attack.png")
    try:
        imgs = page.images()
        assert len(imgs) == 10  # the figure of chelsea at both budgets
        assert all(i["complete"] and i["width"] > 0 for i in imgs)
        assert page.page.locator("svg").count() == 2
        assert page.errors == []
    finally:
        page.close()


def test_report_provenance_block_in_chromium(browser: Any, tmp_path: Path) -> None:
    """``write_report(provenance=...)`` adds the block; without it the page is as before."""
    import torch

    from advsr.report import Figure, ReportTable, write_report

    table = ReportTable("t", ["a", "b"], [["x", "1.00"]])
    fig = Figure("f", [("img", torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)))])
    plain = write_report(tmp_path / "plain.html", "r", "intro", [table], [fig])
    assert "Provenance" not in plain.read_text()
    path = write_report(
        tmp_path / "prov.html", "r", "intro", [table], [fig],
        provenance={"advsr": "0.1.0", "command": "advsr x --y '<z>'"},
    )  # fmt: skip
    page = Opened(browser, path, tmp_path / "prov.png")
    try:
        text = page.page.locator("table.provenance").inner_text()
        assert "advsr x --y '<z>'" in text
        assert all(i["complete"] and i["width"] > 0 for i in page.images())
        assert page.errors == []
    finally:
        page.close()
