"""The shape of the house, checked from the source (issue 27): no import cycle, every module
that registers an entry imported from its package's one list, no long functions, models
that import no data, and an engine apart from the experiments.

Everything here reads the source with :mod:`ast` (nothing is imported), so a failure names
the file and line to change.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "advsr"

MAX_FUNCTION_LINES = 60
"""The longest function body, in lines of code (docstring, blank and comment lines not
counted)."""


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES: dict[str, ast.Module] = {m: ast.parse(p.read_text("utf-8")) for m, p in MODULES.items()}


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _statements(nodes: list[ast.stmt], *, into_functions: bool) -> Iterator[ast.stmt]:
    """Every statement, nested ones included, skipping ``if TYPE_CHECKING:`` blocks (and
    function bodies unless ``into_functions``)."""
    for n in nodes:
        if isinstance(n, ast.If) and _type_checking(n):
            continue
        yield n
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not into_functions:
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(n, field, None)
            if isinstance(children, list):
                yield from _statements(children, into_functions=into_functions)


def _imports(module: str, *, into_functions: bool = True) -> set[str]:
    """The advsr modules ``module`` imports (at import time and inside functions)."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for n in _statements(TREES[module].body, into_functions=into_functions):
        if isinstance(n, ast.Import):
            out.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parts = package.split(".")[: len(package.split(".")) - n.level + 1]
                base = ".".join([*parts, *([n.module] if n.module else [])])
            for a in n.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in MODULES else base)
    return {m for m in out if m in MODULES and m != module}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or through others, counting the imports
    made inside functions too (``TYPE_CHECKING`` imports are not run, so they do not count)."""
    graph = {m: _imports(m) for m in MODULES}
    cycles = import_cycles(graph)
    detail = "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{a}->{b}" for a in c for b in graph[a] if b in c) + ")"
        for c in cycles
    )
    assert not cycles, f"import cycles: {detail}"


def test_cycle_finder_finds_a_cycle() -> None:
    """The check itself can fail: a three-module ring is one cycle, a chain is none."""
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


_REGISTER = re.compile(r"^_?(register\w*|reg)$")


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _module_calls(module: str) -> Iterator[str]:
    """The names of the functions called by a module's import-time code (decorators of its
    top-level functions and classes included)."""
    for n in _statements(TREES[module].body, into_functions=False):
        roots: list[ast.AST] = []
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            roots = list(n.decorator_list)
        elif not isinstance(n, ast.ClassDef):
            roots = [n]
        for root in roots:
            for sub in ast.walk(root):
                if isinstance(sub, ast.Call):
                    yield _callee(sub)


def _entry_lists() -> dict[str, tuple[str, ...]]:
    """Each package's ``ENTRY_MODULES`` tuple (package -> module names)."""
    out: dict[str, tuple[str, ...]] = {}
    for module, tree in TREES.items():
        if MODULES[module].name != "__init__.py":
            continue
        for n in tree.body:
            if (
                isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "ENTRY_MODULES" for t in n.targets)
                and isinstance(n.value, ast.Tuple)
            ):
                out[module] = tuple(e.value for e in n.value.elts if isinstance(e, ast.Constant))
    return out


def registering_modules() -> dict[str, bool]:
    """Modules whose import registers an entry -> whether the module defines the registry
    it registers in (then every user of the registry imports it anyway)."""
    out: dict[str, bool] = {}
    for module in MODULES:
        if module == "advsr.registry":
            continue
        calls = set(_module_calls(module))
        if any(_REGISTER.match(c) for c in calls):
            out[module] = "Registry" in calls
    return out


def unlisted_entry_modules(
    registering: dict[str, bool], lists: dict[str, tuple[str, ...]]
) -> list[str]:
    """Registering modules that no package's ``ENTRY_MODULES`` names (the closest package
    with a list above the module must name it)."""
    missing = []
    for module, defines_registry in sorted(registering.items()):
        if defines_registry or module in lists:
            continue
        owners = [p for p in lists if module.startswith(p + ".")]
        if not owners:
            missing.append(f"{module} (no package above it has ENTRY_MODULES)")
            continue
        owner = max(owners, key=len)
        if module[len(owner) + 1 :] not in lists[owner]:
            missing.append(f"{module} (not in {owner}.ENTRY_MODULES)")
    return missing


def test_every_module_that_registers_an_entry_is_in_its_packages_list() -> None:
    lists = _entry_lists()
    assert {"advsr.attacks", "advsr.defenses", "advsr.experiments", "advsr.models.sr"} <= set(
        lists
    ), f"packages with ENTRY_MODULES: {sorted(lists)}"
    registering = registering_modules()
    assert "advsr.experiments.defend" in registering  # the scan sees registrations
    missing = unlisted_entry_modules(registering, lists)
    assert not missing, "entry modules not imported from their package's list: " + ", ".join(
        missing
    )


def test_the_entry_list_check_can_fail() -> None:
    lists = _entry_lists()
    short = {
        **lists,
        "advsr.experiments": tuple(m for m in lists["advsr.experiments"] if m != "defend"),
    }
    assert unlisted_entry_modules(registering_modules(), short) == [
        "advsr.experiments.defend (not in advsr.experiments.ENTRY_MODULES)"
    ]


def test_every_listed_entry_module_exists() -> None:
    for package, names in _entry_lists().items():
        for name in names:
            assert f"{package}.{name}" in MODULES, f"{package}.ENTRY_MODULES names {name!r}"


def function_lengths(tree: ast.Module, lines: list[str]) -> Iterator[tuple[str, int, int]]:
    """``(name, line, lines of code)`` of every function: its body without the docstring,
    blank lines and comment-only lines."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body = body[1:]
        if not body:
            continue
        text = lines[body[0].lineno - 1 : node.end_lineno]
        code = sum(1 for ln in text if ln.strip() and not ln.strip().startswith("#"))
        yield node.name, node.lineno, code


def test_no_function_is_longer_than_the_limit() -> None:
    long = [
        f"{MODULES[m].relative_to(SRC)}:{line} {name} ({n} lines)"
        for m, tree in TREES.items()
        for name, line, n in function_lengths(tree, MODULES[m].read_text("utf-8").splitlines())
        if n > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code: " + "; ".join(long)


def test_function_length_counts_code_only() -> None:
    src = 'def f():\n    """Doc.\n\n    More."""\n    # a comment\n\n    a = 1\n    return a\n'
    ((name, line, n),) = function_lengths(ast.parse(src), src.splitlines())
    assert (name, line, n) == ("f", 1, 2)


def test_models_import_no_data() -> None:
    """Architectures and their loading only: data and training loops live elsewhere."""
    bad = sorted(
        f"{m} imports {d}"
        for m in MODULES
        if m.startswith("advsr.models")
        for d in _imports(m)
        if d.startswith(("advsr.data", "advsr.training", "advsr.engine", "advsr.experiments"))
    )
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("advsr.engine", ("advsr.experiments.",)),  # the engine knows no experiment type
        ("advsr.engine.store", ("advsr.engine.tables",)),  # the store only stores
    ],
)
def test_engine_apart_from_the_experiments(module: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(
        f"{m} imports {d}"
        for m in MODULES
        if m == module or m.startswith(module + ".")
        for d in _imports(m)
        if d.startswith(forbidden) or d in {f.rstrip(".") for f in forbidden}
    )
    assert not bad, "; ".join(bad)


def test_experiments_hold_one_module_per_experiment_type() -> None:
    """Every module in ``advsr/experiments`` registers an experiment: nothing else lives
    there."""
    registering = registering_modules()
    other = sorted(
        m for m in MODULES if m.startswith("advsr.experiments.") and m not in registering
    )
    assert not other, f"modules in advsr/experiments that register no experiment: {other}"
