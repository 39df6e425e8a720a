"""The documentation site's Python examples run as written, and its API reference covers
every public module.

Every ```` ```python ```` block of ``docs/**/*.md`` runs in a fresh temporary working folder,
as ``tests/test_readme.py`` does for the README. A block whose fence title starts with
"not run" (```` ```python title="not run: needs carn_m.pth" ````) is only counted: it needs
files or data the suite does not have. A block that is also in the README runs there, once.
``mkdocs build --strict`` itself is ``make docs`` (CI), not a test.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```[ \t]*$", flags=re.S | re.M)
NOT_RUN = re.compile(r"""title=["']not run""")
RECIPE = re.compile(r"""title=["']file """)
"""A block titled ``file <path>`` is a file of a recipe (docs/guides/extending.md): written
into a copy of the package and run there by ``tests/test_extending.py``."""
README_BLOCKS = set(
    re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
)


def _blocks() -> list[tuple[str, str, str]]:
    """(page, fence info, code) of every Python block, pages in sorted order."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        for m in FENCE.finditer(page.read_text("utf-8")):
            found.append((rel, m.group(1), m.group(2)))
    return found


BLOCKS = _blocks()
RUN = [
    (p, c)
    for p, info, c in BLOCKS
    if not NOT_RUN.search(info) and not RECIPE.search(info) and c not in README_BLOCKS
]
RECIPE_BLOCKS = [(p, c) for p, info, c in BLOCKS if RECIPE.search(info)]
NOT_RUN_BLOCKS = [(p, c) for p, info, c in BLOCKS if NOT_RUN.search(info)]
IDS = [f"{p}#{sum(q == p for q, _ in RUN[:i])}" for i, (p, _) in enumerate(RUN)]


def test_docs_examples_are_counted() -> None:
    in_readme = sum(
        c in README_BLOCKS
        for _, info, c in BLOCKS
        if not NOT_RUN.search(info) and not RECIPE.search(info)
    )
    # the site's own examples, the README's (run by tests/test_readme.py) and the few
    # that cannot run here add up to every block
    assert len(RUN) + in_readme + len(NOT_RUN_BLOCKS) + len(RECIPE_BLOCKS) == len(BLOCKS)
    assert len(RUN) >= 8, f"only {len(RUN)} runnable examples on the site"
    assert len(NOT_RUN_BLOCKS) <= 3, "mark as 'not run' only what truly cannot run"


@pytest.mark.parametrize(("page", "code"), RUN, ids=IDS)
def test_docs_python_block_runs(page: str, code: str, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs/{page}", "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip(), f"an example on {page} printed nothing"


def _public_top_level() -> set[str]:
    src = REPO / "src" / "advsr"
    names = {p.stem for p in src.glob("*.py")} | {p.parent.name for p in src.glob("*/__init__.py")}
    return {n for n in names if not n.startswith("_") and n != "cli"}  # cli: docs/cli.md


def test_api_reference_covers_every_public_module() -> None:
    text = "\n".join(p.read_text("utf-8") for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: advsr\.(\w+)", text, flags=re.M))
    missing = sorted(_public_top_level() - documented)
    assert not missing, f"add a page (or a ::: line) under docs/api/ for: {missing}"


def test_every_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text("utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")]
    listed = set(re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)$", nav, flags=re.M))
    missing = [p for p in pages if p not in listed]
    assert not missing, f"pages missing from the nav in mkdocs.yml: {missing}"


def test_not_run_blocks_say_why() -> None:
    for page, info, _ in BLOCKS:
        if NOT_RUN.search(info):
            assert re.search(r"""title=["']not run: \S""", info), f"{page}: say why it cannot run"
