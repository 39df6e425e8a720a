"""Every registered experiment runs as cells through ``advsr run`` and, run again, reads every
row back from the store; every cell is validated before any work; the CLI's options derive
from the configs; ``advsr experiments`` and ``advsr list`` show the registries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advsr.engine.cell import EXPERIMENTS
from advsr.engine.store import ResultStore

# a quick spec per experiment: a new experiment must add one here (the test below fails if not)
SMOKE: dict[str, str] = {
    "eval-sr": "grid = { scale = [2, 4] }\nsettings = { hr_crop = 32 }",
    "attack-sr": "grid = { eps = [0.0078431372549, 0.0313725490196] }\n"
    'settings = { model = "demo-edsr", scale = 2, steps = 2, hr_crop = 32 }',
    "transfer": 'grid = { source = ["bicubic", "demo-edsr"] }\n'
    'settings = { targets = ["bicubic", "demo-edsr"], scale = 2, steps = 2, hr_crop = 32 }',
    "attack-clf": 'grid = { attack = ["fgsm", "deepfool"] }\nsettings = { limit = 8 }',
    "defend": 'grid = { defense = ["none", "median:size=3x3"], attack = ["none", "fgsm"] }\n'
    "settings = { limit = 8, eps = 0.1 }",
    "perceptual": 'grid = { eps = [0.05, 0.1] }\nsettings = { attack = "fpgap", limit = 8 }',
    "explain": 'settings = { limit = 3, attack = "fgsm@0.1" }',
    "manifold": 'settings = { limit = 16, attacks = ["fgsm@0.1"], epochs = 2, hidden = 16,'
    ' defense = "median:size=3x3" }',
    "backdoor": 'settings = { model_file = "MODEL_FILE" }',
    "train-sr": 'settings = { model = "edsr-baseline", out = "TMP/sr.safetensors", steps = 2,'
    ' patch = 8, batch = 2, arch = { n_resblocks = 1, n_feats = 8 }, holdout = ["chelsea"] }',
    "train-classifier": 'settings = { out = "TMP/clf.safetensors", epochs = 1 }',
    "train-refsr": 'settings = { out = "TMP/refsr.safetensors", steps = 2, hr_size = 32,'
    " batch = 2, arch = { n_feats = 8, n_resblocks = 1, level_blocks = [1, 1, 1],"
    " lte_channels = [8, 8, 8] } }",
}


@pytest.fixture(scope="module")
def refsr_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from advsr.models.refsr import REFSR_MODELS
    from advsr.training.refsr import TrainRefSRConfig, train_refsr

    out = tmp_path_factory.mktemp("refsr") / "m.safetensors"
    cfg = TrainRefSRConfig(
        out=str(out), arch=dict(REFSR_MODELS.get("ttsr").tiny), hr_size=32, steps=2, batch=2
    )
    train_refsr(cfg, progress=False)
    return out


def test_every_experiment_has_a_smoke_spec(cli) -> None:
    assert set(SMOKE) == set(EXPERIMENTS.names())
    res = cli("experiments")
    assert res.out.split() == EXPERIMENTS.names()  # one per line, nothing else
    assert set(res.out.split()) >= {
        "eval-sr", "attack-sr", "transfer", "attack-clf", "defend", "perceptual", "explain",
        "manifold", "backdoor", "train-sr", "train-classifier", "train-refsr",
    }  # fmt: skip


@pytest.mark.parametrize("name", EXPERIMENTS.names())
def test_experiment_runs_from_a_spec_and_reads_back(
    name: str, cli, tmp_path: Path, refsr_file: Path
) -> None:
    spec = tmp_path / "spec.toml"
    body = SMOKE[name].replace("MODEL_FILE", str(refsr_file)).replace("TMP", str(tmp_path))
    spec.write_text(f'experiment = "{name}"\n' + _tables(body))
    store = tmp_path / "s.sqlite"
    first = cli("run", str(spec), "--store", str(store), "--json")
    assert first.code == 0, first.err
    doc = json.loads(first.out)
    assert doc["computed"] > 0 and all(r["stored"] == r["expected"] for r in doc["runs"])
    again = json.loads(cli("run", str(spec), "--store", str(store), "--json").out)
    assert again["computed"] == 0 and again["from_store"] == doc["computed"]
    assert _stable(again["summaries"]) == _stable(doc["summaries"])  # the same numbers
    with ResultStore(store) as st:
        assert all(c["finished"] for c in st.cells())
    if name.startswith("train-"):  # the artefact: the weights come back from the store
        out = Path(str(spec_settings(body)["out"]))
        out.unlink()
        res = cli(name, "--store", str(store), *_args(spec_settings(body)), "--json")
        assert res.code == 0, res.err
        assert out.is_file() and json.loads(res.out)["computed"] == 0
    report = tmp_path / "r.html"
    rep = cli("report", "--experiment", name, "--out", str(report), "--store", str(store))
    assert rep.code == 0, rep.err
    assert report.read_text().startswith("<!doctype html>")


def spec_settings(body: str) -> dict[str, object]:
    import tomllib

    return dict(tomllib.loads(_tables(body))["settings"])


def _args(settings: dict[str, object]) -> list[str]:
    """Command-line options for settings (dicts as repeated KEY=VALUE)."""
    out: list[str] = []
    for k, v in settings.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, dict):
            for kk, vv in v.items():
                text = ",".join(map(str, vv)) if isinstance(vv, list) else str(vv)
                out += [flag, f"{kk}={text}"]
        elif isinstance(v, list):
            for item in v:
                out += [flag, str(item)]
        else:
            out += [flag, str(v)]
    return out


def _stable(doc: object) -> object:
    """A document without the counts that say what this run computed."""
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in ("computed", "from_store")}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def _tables(body: str) -> str:
    """``grid = {...}`` / ``settings = {...}`` lines as TOML tables of the top level."""
    out = []
    for line in body.splitlines():
        key, _, value = line.partition(" = ")
        out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


def test_an_invalid_second_cell_stores_nothing(cli, tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('experiment = "eval-sr"\n[grid]\ndata = ["samples", "nosuchdata"]\n')
    store = tmp_path / "s.sqlite"
    res = cli("run", str(spec), "--store", str(store))
    assert res.code == 2 and "nosuchdata" in res.err and res.err.count("\n") == 1
    with ResultStore(store) as st:
        assert st.cells() == [] and st.rows() == []
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(
        '[[run]]\nexperiment = "eval-sr"\nsettings = { hr_crop = 32 }\n'
        '[[run]]\nexperiment = "attack-clf"\nsettings = { attack = "pdg" }\n'
    )
    res = cli("run", str(mixed), "--store", str(store))
    assert res.code == 2 and "did you mean 'pgd'" in res.err
    with ResultStore(store) as st:
        assert st.cells() == []


def test_a_spec_mixing_experiments(cli, tmp_path: Path) -> None:
    spec = tmp_path / "mix.toml"
    spec.write_text(
        '[[run]]\nexperiment = "eval-sr"\ngrid = { scale = [2, 4] }\n'
        "settings = { hr_crop = 32 }\n"
        '[[run]]\nexperiment = "attack-clf"\nsettings = { attack = "fpgap@0.05", limit = 4 }\n'
    )
    res = cli("run", str(spec), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert [r["experiment"] for r in doc["runs"]] == ["eval-sr", "eval-sr", "attack-clf"]
    assert set(doc["summaries"]) == {"eval-sr", "attack-clf"}
    text = cli("run", str(spec)).out
    assert "eval-sr: 2 cell(s)" in text and "attack-clf: 1 cell(s)" in text


def test_grid_size_is_bounded_before_expansion(cli, tmp_path: Path) -> None:
    spec = tmp_path / "huge.toml"
    values = ", ".join(str(i) for i in range(1000))
    spec.write_text(f'experiment = "eval-sr"\n[grid]\nscale = [{values}]\nhr_crop = [{values}]\n')
    res = cli("run", str(spec))
    assert res.code == 2 and "1,000,000 cells" in res.err


@pytest.mark.parametrize("what", ["attacks", "defenses", "models", "classifiers", "triggers",
                                  "experiments", "datasets"])  # fmt: skip
def test_every_registry_is_listable(cli, what: str) -> None:
    res = cli("list", what, "--json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)[what]
    assert rows and all("name" in r for r in rows)
    assert cli("list", what).code == 0
    assert cli("list", what[:-2]).code == 2  # a near miss: one line with the closest name


def test_cli_options_derive_from_the_configs() -> None:
    """Each experiment command's options are its config's fields, with its defaults."""
    import inspect

    import typer

    from advsr.cli import app

    commands = {
        c.name or c.callback.__name__.replace("_", "-"): c.callback  # type: ignore[union-attr]
        for c in app.registered_commands
    }
    for name in ("eval-sr", "attack-sr", "attack-clf", "defend", "explain", "manifold"):
        fn = commands[name]
        config = fn.__wrapped_config__  # type: ignore[attr-defined]
        params = inspect.signature(fn).parameters
        for field, info in config.model_fields.items():
            if field not in params:
                continue  # replaced by a grid option of the command (e.g. --eps)
            default = params[field].default
            if isinstance(default, list | dict) or default is None:
                continue
            if isinstance(default, str) and isinstance(info.default, float):
                continue  # a budget option takes text such as 8/255
            assert default == info.default, (name, field, default, info.default)
        assert isinstance(typer, object)


def test_a_spec_takes_budgets_as_fractions_like_the_options(cli, tmp_path: Path) -> None:
    from advsr.engine.context import Context
    from advsr.engine.plan import plan_cells
    from advsr.engine.store import cell_id_of

    cells = [("attack-sr", {"model": "bicubic", "eps": e}) for e in ("8/255", 8 / 255)]
    cells += [("defend", {"eps": e}) for e in ("4/255", 4 / 255)]
    ids = [cell_id_of(e.name, p.identity) for e, p in plan_cells(cells, Context())]
    assert ids[0] == ids[1] and ids[2] == ids[3]
    spec = tmp_path / "bad.toml"
    spec.write_text('experiment = "attack-sr"\n[settings]\neps = "8/0"\n')
    res = cli("run", str(spec))
    assert res.code == 2 and "fraction like 8/255" in res.err and "Traceback" not in res.err
