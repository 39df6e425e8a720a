"""The "Extending advsr" guide, followed literally (docs/guides/extending.md).

The package and its tests are copied to a temporary folder; each in-tree recipe's files are
written there from the guide's ``file ...`` blocks and its module is added to its package's
``ENTRY_MODULES``, as the guide says; the guide's commands then run against the copy, and so
do the generated contract tests and the structure checks. The plugin recipe is built and
installed with pip into a temporary folder and used from the command line and a spec of the
unchanged package; a plugin that fails to load is named in one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

GUIDE = REPO / "docs" / "guides" / "extending.md"
BLOCK = re.compile(r'^```(\w+) title="file ([^"]+)"\n(.*?)^```[ \t]*$', flags=re.S | re.M)
FILES: dict[str, str] = {m.group(2): m.group(3) for m in BLOCK.finditer(GUIDE.read_text())}

RECIPES = {  # module file -> (package __init__, entry module name)
    "src/advsr/defenses/gaussian.py": ("src/advsr/defenses/__init__.py", "gaussian"),
    "src/advsr/models/sr/espcn.py": ("src/advsr/models/sr/__init__.py", "espcn"),
    "src/advsr/attacks/rfgsm.py": ("src/advsr/attacks/__init__.py", "rfgsm"),
    "src/advsr/experiments/lr_consistency.py": (
        "src/advsr/experiments/__init__.py",
        "lr_consistency",
    ),
}

Run = Callable[..., subprocess.CompletedProcess[str]]


def _add_to_list(init: Path, name: str) -> None:
    """'add "<name>" to ENTRY_MODULES in <package>/__init__.py'."""
    text = init.read_text()
    edited, n = re.subn(r"^(ENTRY_MODULES = \()", rf'\1"{name}", ', text, count=1, flags=re.M)
    assert n == 1, f"{init} has no ENTRY_MODULES tuple to add {name!r} to"
    init.write_text(edited)


def _runner(src: Path, tmp: Path, extra_path: Path | None = None) -> Run:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (extra_path, src) if p is not None),
        "ADVSR_THREADS": "1",
        "ADVSR_PROGRESS": "0",
        "ADVSR_STORE": str(tmp / "store.sqlite"),
    }

    def run(*args: str, cwd: Path = tmp) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "advsr", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    return run


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package and its tests with the four in-tree recipes applied."""
    root = tmp_path_factory.mktemp("extended")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", root / "src", ignore=ignore)
    shutil.copytree(REPO / "tests", root / "tests", ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    for module, (init, name) in RECIPES.items():
        (root / module).write_text(FILES[module])
        _add_to_list(root / init, name)
    return root


def test_the_guide_has_every_recipe_file() -> None:
    assert set(RECIPES) | {
        "advsr-sharpen/pyproject.toml",
        "advsr-sharpen/advsr_sharpen/__init__.py",
    } == set(FILES)


def test_recipes_pass_the_structure_and_contract_tests(tree: Path) -> None:
    """The new entries are registered, listed, and pass the tests generated from the
    registries (defenses, the SR zoo, attacks) and the structure checks."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "ADVSR_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "no:xdist", "-rA", "tests/test_structure.py", "tests/test_defenses.py",
         "tests/test_models_sr.py", "tests/test_attack_contract.py",
         "-k", "test_structure or gaussian or espcn or rfgsm"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    for name in ("gaussian", "espcn", "rfgsm"):  # the generated cases of each entry ran
        assert re.search(rf"PASSED .*{name}", res.stdout), f"no {name} case ran"


def test_defense_recipe(tree: Path, tmp_path: Path) -> None:
    run = _runner(tree / "src", tmp_path)
    listing = run("list", "defenses", "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = [r for r in json.loads(listing.stdout)["defenses"] if r["name"] == "gaussian-blur"]
    assert row["settings"] == {"sigma": 1.0} and row["adaptive"] == "attack directly"
    res = run(
        "defend", "--limit", "8", "--defense", "gaussian-blur:sigma=1.5",
        "--attack", "fgsm@8/255", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "gaussian-blur" in res.stdout
    bad = run("defend", "--limit", "8", "--defense", "gaussian-blur:sigma=0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "sigma" in bad.stderr


def test_sr_architecture_recipe(tree: Path, tmp_path: Path) -> None:
    run = _runner(tree / "src", tmp_path)
    listing = run("list", "models", "--json")
    assert listing.returncode == 0, listing.stderr
    assert "espcn" in listing.stdout
    res = run(
        "eval-sr", "--model", "espcn", "--scale", "2", "--random-weights", "--hr-crop", "48",
        "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["computed"] == 8  # the 8 bundled photographs


def test_attack_recipe(tree: Path, tmp_path: Path) -> None:
    run = _runner(tree / "src", tmp_path)
    listing = run("list", "attacks", "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = [r for r in json.loads(listing.stdout)["attacks"] if r["name"] == "rfgsm"]
    assert (row["budget"], row["settings"]) == ("linf", {"alpha_fraction": 0.5})
    res = run("attack-clf", "--attack", "rfgsm@8/255", "--limit", "16", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["computed"] == 16
    (cell,) = doc["results"]
    assert cell["attack"] == "rfgsm@8/255" and cell["images"] == 16
    assert cell["linf_mean"] <= 8 / 255 + 1e-6 and cell["fooling_rate"] > 0


def _toml_block(title: str) -> str:
    m = re.search(
        rf'^```toml title="{re.escape(title)}"\n(.*?)^```', GUIDE.read_text(), re.S | re.M
    )
    assert m, f"no toml block {title!r} in the guide"
    return m.group(1)


def test_experiment_recipe(tree: Path, tmp_path: Path) -> None:
    run = _runner(tree / "src", tmp_path)
    (tmp_path / "lr.toml").write_text(_toml_block("lr.toml"))
    res = run("run", "lr.toml", "--json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count('"experiment": "lr-consistency"') >= 1
    again = run("run", "lr.toml", "--json")  # resumes: everything from the store
    assert again.returncode == 0 and '"computed": 0' in again.stdout, again.stdout[-500:]
    stored = run("results", "--experiment", "lr-consistency")
    assert stored.returncode == 0 and "demo-edsr" in stored.stdout, stored.stderr


def _install(package: Path, target: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(package)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]


def test_plugin_recipe(tmp_path: Path) -> None:
    """Built and installed with pip, the plugin's defense works from the command line and
    from a spec of the package as it is."""
    for path in ("advsr-sharpen/pyproject.toml", "advsr-sharpen/advsr_sharpen/__init__.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(FILES[path])
    _install(tmp_path / "advsr-sharpen", tmp_path / "site")
    run = _runner(REPO / "src", tmp_path, extra_path=tmp_path / "site")
    listing = run("list", "defenses", "--json")
    assert listing.returncode == 0, listing.stderr
    assert "sharpen" in [r["name"] for r in json.loads(listing.stdout)["defenses"]]
    res = run(
        "defend", "--limit", "8", "--defense", "sharpen:amount=1.0", "--attack", "fgsm@8/255",
        "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (tmp_path / "spec.toml").write_text(
        'experiment = "defend"\n[grid]\ndefense = ["none", "sharpen:amount=1.0"]\n'
        '[settings]\nlimit = 8\nattack = "fgsm@8/255"\n'
    )
    spec = run("run", "spec.toml", "--json")
    assert spec.returncode == 0, spec.stderr
    assert "sharpen:amount=1.0" in spec.stdout
    typo = run("defend", "--limit", "8", "--defense", "sharpn")
    assert typo.returncode == 2 and "did you mean 'sharpen'" in typo.stderr, typo.stderr


def test_a_broken_plugin_is_named(tmp_path: Path) -> None:
    pkg = tmp_path / "advsr-broken"
    (pkg / "advsr_broken").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        FILES["advsr-sharpen/pyproject.toml"]
        .replace("advsr-sharpen", "advsr-broken")
        .replace('sharpen = "advsr_sharpen"', 'broken = "advsr_broken"')
    )
    (pkg / "advsr_broken" / "__init__.py").write_text("raise RuntimeError('half-written')\n")
    _install(pkg, tmp_path / "site")
    run = _runner(REPO / "src", tmp_path, extra_path=tmp_path / "site")
    res = run("list", "defenses")
    assert res.returncode == 2, res.stdout[-300:] + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "plugin 'broken'" in line and "advsr-broken" in line and "half-written" in line
    known = run("eval-sr", "--model", "bicubic", "--hr-crop", "32", "--json")
    assert known.returncode == 0, known.stderr  # built-in names never load plugins
