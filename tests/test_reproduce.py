"""``advsr reproduce``: every packaged paper's quick size end to end, and the engine's rules
(references, stand-ins, missing weights, published numbers and differences)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from advsr.errors import InputError, UnknownNameError
from advsr.reproduce import load_paper, paper_keys
from advsr.reproduce.engine import Resources, check_resources, expand_table
from advsr.reproduce.spec import parse_paper

PAPERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "papers"
PAPERS = ("badrefsr", "input-transformations", "pgap", "sr-attacks", "sr-defense")


def test_list_prints_five_papers(cli) -> None:
    res = cli("reproduce", "--list")
    assert res.code == 0, res.err
    lines = res.out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == list(PAPERS)
    doc = json.loads(cli("reproduce", "--list", "--json").out)
    assert [p["key"] for p in doc["papers"]] == list(PAPERS)
    assert all(p["title"] and p["reproduces"] for p in doc["papers"])


@pytest.mark.slow
@pytest.mark.timeout(900)  # sr-defense's quick size: 80-150 s on 2 busy cores (quilting)
@pytest.mark.parametrize("key", PAPERS)
def test_quick_size_runs_reports_and_reads_back(key: str, cli, tmp_path: Path) -> None:
    store, report = tmp_path / "s.sqlite", tmp_path / "r.html"
    res = cli("reproduce", key, "--store", str(store), "--report", str(report), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    paper = load_paper(key)
    assert doc["paper"] == key and doc["computed"] > 0
    assert [t["id"] for t in doc["tables"]] == [t.id for t in paper.tables]
    ours = [c for t in doc["tables"] for c in t["cells"] if c["ours"] is not None]
    assert ours, "quick size computed no number"
    for t in doc["tables"]:
        for c in t["cells"]:  # the difference is ours minus the published number
            if c["ours"] is not None and c["published"] is not None:
                assert c["difference"] == pytest.approx(c["ours"] - c["published"])
    if key == "sr-defense":  # random defenses judged from one draw, non-adaptively
        flagged = {f["flag"] for t in doc["tables"] for c in t["cells"] for f in c["flags"]}
        assert "random-without-eot" in flagged
    html = report.read_text()
    assert html.startswith("<!doctype html>") and paper.tables[0].title.split(":")[0] in html
    if any(f.kind in ("line", "curves") for f in paper.figures):
        assert "<svg" in html
    again = json.loads(cli("reproduce", key, "--store", str(store), "--json").out)
    assert again["computed"] == 0 and again["tables"] == doc["tables"]
    text = cli("reproduce", key, "--store", str(store))
    assert text.code == 0 and paper.title in text.out


def test_table_picks_tables_and_their_figures(cli, tmp_path: Path) -> None:
    paper = load_paper("sr-attacks").only(["alpha"])
    assert [t.id for t in paper.tables] == ["alpha"] and [f.id for f in paper.figures] == [
        "alpha-lr"
    ]
    res = cli("reproduce", "sr-attacks", "--table", "nope")
    assert res.code == 2 and "its tables: basic, alpha, reference" in res.err
    res = cli("reproduce", "pgap", "--table", "table2", "--store", str(tmp_path / "s"), "--json")
    assert res.code == 0, res.err
    assert [t["id"] for t in json.loads(res.out)["tables"]] == ["table2"]


def _res(**kw: object) -> Resources:
    base: dict[str, object] = {"size": "quick", "data": {}, "weights": {}, "work": Path("/w")}
    base.update(kw)
    return Resources(**base)  # type: ignore[arg-type]


def test_model_references_use_given_weights_then_stand_ins_else_say_what_to_pass(
    tmp_path: Path,
) -> None:
    paper = load_paper("sr-attacks")
    table = paper.table("basic")
    cells = expand_table(table, paper, _res()).stages[0]
    by = {(c.labels["model"], c.labels["eps"]): c for c in cells}
    carn = by[("CARN-M", "8/255")]
    assert carn.settings["model"] == "demo-carn-m" and carn.missing is None
    assert carn.settings["eps"] == pytest.approx(8 / 255)
    assert any("stand-in demo-carn-m" in n for n in carn.notes)
    assert by[("EDSR", "8/255")].missing == "weights not given: pass --weights edsr=FILE"
    assert by[("4PP-EUSR", "8/255")].missing == "no 4PP-EUSR implementation here"
    assert by[("Bicubic", "8/255")].settings["model"] == "bicubic"
    w = tmp_path / "carn_m.pth"
    given = expand_table(table, paper, _res(weights={"carn-m": str(w)})).stages[0]
    carn = next(c for c in given if c.labels["model"] == "CARN-M")
    assert carn.settings["model"] == "carn-m" and carn.settings["weights"] == str(w)
    assert not carn.notes or all("stand-in demo-carn-m" not in n for n in carn.notes)


def test_transfer_targets_drop_missing_models_and_collect_their_weights(tmp_path: Path) -> None:
    paper = load_paper("sr-attacks")
    w = str(tmp_path / "c.pth")
    cells = expand_table(paper.table("transfer"), paper, _res(weights={"carn": w})).stages[0]
    carn = next(c for c in cells if c.labels["source"] == "CARN")
    assert carn.settings["targets"] == ["demo-edsr", "carn", "demo-carn-m"]
    assert carn.settings["weights"] == {"carn": w}
    assert carn.labels["targets"] == ["EDSR-baseline", "CARN", "CARN-M"]


def test_data_slots_stand_ins_strict_references_and_globs() -> None:
    paper = load_paper("pgap")
    t2 = paper.table("table2")
    cells = [c for stage in expand_table(t2, paper, _res()).stages for c in stage]
    digits = [c for c in cells if c.settings.get("data") == "digits-test"]
    assert digits and all(c.missing is None for c in digits)
    imagenet = [c for c in cells if c.labels.get("data") == "ImageNet"]
    missing = "data not given: pass --data imagenet=DIR"
    assert imagenet and all(c.missing == missing for c in imagenet)
    given = _res(data={"imagenet": "/data/foolbox/imagenet_*.jpg"})
    cells = [c for stage in expand_table(t2, paper, given).stages for c in stage]
    inet = [c for c in cells if c.labels.get("data") == "ImageNet"]
    assert {c.settings["data"] for c in inet} == {"/data/foolbox"}
    assert {c.settings["pattern"] for c in inet} == {"imagenet_*.jpg"}
    assert {c.settings["model"] for c in inet} == {"efficientnet-lite0-imagenet"}
    sr = load_paper("sr-defense")
    cifar = [c for s in expand_table(sr.table("cifar10"), sr, _res(data={"cifar10": "/c"})).stages
             for c in s]  # fmt: skip
    assert {c.missing for c in cifar} == {"weights not given: pass --weights resnet20-cifar10=FILE"}


def test_label_only_settings_and_templates() -> None:
    paper = load_paper("badrefsr")
    stages = expand_table(paper.table("rate"), paper, _res(work=Path("/w"))).stages
    train, measure = stages
    assert [c.settings["out"] for c in train] == [
        f"/w/badrefsr-rate-{r}.safetensors" for r in ("0.1", "0.2", "0.3", "0.4")
    ]
    assert all("_rate" not in c.settings and "rate" not in c.settings for c in measure)
    assert [c.raw["_rate"] for c in measure] == [0.1, 0.2, 0.3, 0.4]
    assert measure[2].settings["model_file"] == "/w/badrefsr-rate-0.3.safetensors"
    assert not any(c.measure for c in train) and all(c.measure for c in measure)


def test_resources_are_checked_against_the_paper(tmp_path: Path) -> None:
    paper = load_paper("sr-defense")
    with pytest.raises(InputError, match="no data slot 'imgnet'; its slots: imagenet, cifar10"):
        check_resources(paper, _res(data={"imgnet": str(tmp_path)}))
    with pytest.raises(InputError, match="no such file or folder"):
        check_resources(paper, _res(data={"imagenet": str(tmp_path / "nope" / "*.jpg")}))
    with pytest.raises(InputError, match="no model 'edsr' to give weights to"):
        check_resources(paper, _res(weights={"edsr": str(tmp_path)}))
    with pytest.raises(InputError, match="no such file"):
        check_resources(paper, _res(weights={"resnet20-cifar10": str(tmp_path / "w.th")}))
    with pytest.raises(UnknownNameError, match="did you mean 'pgap'"):
        load_paper("pgapp")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce"], "name a paper"),
        (["reproduce", "sr-attacks", "--size", "huge"], "--size must be quick or paper"),
        (["reproduce", "nope"], "unknown paper 'nope'"),
        (["reproduce", "sr-defense", "--data", "/x"], "--data expects NAME=PATH here"),
        (["reproduce", "sr-attacks", "--weights", "edsr"], "--weights expects NAME=PATH"),
        (["reproduce", "sr-attacks", "--weights", "a=1", "--weights", "a=2"], "gives 'a' twice"),
        (["reproduce", "sr-attacks", "--report", "r.txt"], ".html"),
    ],
)
def test_bad_input_is_one_line_and_status_2(cli, args: list[str], message: str) -> None:
    res = cli(*args)
    assert res.code == 2 and message in res.err and len(res.err.strip().splitlines()) == 1


def test_every_packaged_paper_is_valid_and_its_published_numbers_are_sourced() -> None:
    assert paper_keys() == PAPERS
    for key in PAPERS:
        paper = load_paper(key)
        if PAPERS_DIR.is_dir():  # the text it reproduces
            assert (PAPERS_DIR / paper.file).is_file(), paper.file
        for t in paper.tables:
            assert all(p.source for p in t.published), (key, t.id)
            assert t.why, f"{key}/{t.id} says nothing about why it may differ"
            for run in t.runs:
                from advsr.experiments import EXPERIMENTS

                EXPERIMENTS.get(run.experiment)


def test_a_paper_spec_refuses_mistakes() -> None:
    base = tomllib.loads(
        'key = "k"\ntitle = "t"\ncitation = "c"\nfile = "f"\nreproduces = "r"\n'
        '[protocol]\nmodels = "m"\n[[table]]\nid = "a"\ntitle = "A"\nrows = ["model"]\n'
        '[[table.runs]]\nexperiment = "eval-sr"\n'
    )
    assert parse_paper(base).tables[0].id == "a"
    with pytest.raises(InputError, match="two tables share an id"):
        parse_paper({**base, "table": base["table"] * 2})
    fig = {"id": "f", "title": "F", "kind": "line", "table": "zz"}
    with pytest.raises(InputError, match="figure f names no table 'zz'"):
        parse_paper({**base, "figure": [fig]})
    with pytest.raises(InputError, match="invalid"):
        parse_paper({**base, "tabel": []})
