"""``advsr reproduce``: every packaged paper's quick size end to end, and the engine's rules
(references, stand-ins, missing weights, published numbers and differences)."""

from __future__ import annotations

import json
import re
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
    with pytest.raises(InputError, match=r"no model 'edsrr' to give weights to.*any SR zoo"):
        check_resources(paper, _res(weights={"edsrr": str(tmp_path)}))
    with pytest.raises(InputError, match="--weights edsr: no such file"):
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
        (["reproduce", "sr-attacks", "--weights", "edsr"], "--weights expects NAME=FILE or"),
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
                from advsr.engine.cell import EXPERIMENTS

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


# --- SR stages: --weights NAME=FILE for any SR zoo model adds rows (sr-defense) ---------------


def _tiny_sr(path: Path, name: str, scale: int) -> str:
    """A tiny zoo model's weights, as ``advsr train-sr`` writes them (they name their arch)."""
    import json

    import torch

    from advsr.io import save_safetensors
    from advsr.models.sr import SR_MODELS, create_sr_model

    torch.manual_seed(scale)
    tiny = dict(SR_MODELS.get(name).tiny)
    model = create_sr_model(name, scale, arch=tiny, bundled=False)
    meta = {"advsr_model": name, "advsr_scale": str(scale), "advsr_arch": json.dumps(tiny)}
    save_safetensors(path, model.state_dict(), meta)
    return str(path)


@pytest.fixture(scope="module")
def sr_files(tmp_path_factory) -> dict[str, str]:
    """Tiny IMDN x2 and x3 files, and a full-size CARN-M multi-scale state_dict (.pth, no
    metadata: its scales are the ones it fits)."""
    import torch

    from advsr.models.sr import create_sr_model

    d = tmp_path_factory.mktemp("sr-weights")
    carn = d / "carn_m.pth"
    torch.manual_seed(0)
    torch.save(create_sr_model("carn-m", 2, bundled=False).state_dict(), carn)
    return {
        "imdn2": _tiny_sr(d / "imdn_x2.safetensors", "imdn", 2),
        "imdn3": _tiny_sr(d / "imdn_x3.safetensors", "imdn", 3),
        "carn": str(carn),
    }


def _sha6(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:6]


def test_weights_grammar_accepts_a_model_and_an_sr_model_at_one_scale() -> None:
    from advsr.reproduce.spec import weights_key

    assert weights_key("imdn@x3") == ("imdn", 3)
    assert weights_key("carn-m") == ("carn-m", None)
    assert weights_key("resnet20-cifar10") == ("resnet20-cifar10", None)
    for bad in ("imdn@3", "imdn@x", "@x2", "imdn@x2@x3", "IMDN", "imdn@x0", ""):
        with pytest.raises(InputError, match="NAME=FILE or SR_MODEL@xS=FILE"):
            weights_key(bad)


@pytest.mark.parametrize(
    "item", ["imdn@3=w.pth", "imdn@x=w.pth", "@x2=w.pth", "Imdn=w.pth", "imdn", "imdn@x2="]
)
def test_bad_weights_forms_are_one_line_with_the_grammar(cli, item: str) -> None:
    res = cli("reproduce", "sr-defense", "--weights", item)
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res.err
    assert "SR_MODEL@xS=FILE" in res.err


def test_sr_weights_are_checked_against_the_zoo_and_the_file(sr_files: dict[str, str]) -> None:
    from advsr.reproduce.engine import file_scales

    paper = load_paper("sr-defense")
    assert file_scales("carn-m", sr_files["carn"]) == (2, 3, 4)
    assert file_scales("imdn", sr_files["imdn3"]) == (3,)
    check_resources(paper, _res(weights={"imdn@x2": sr_files["imdn2"], "carn-m": sr_files["carn"]}))
    cases = [
        ({"imdn@x8": sr_files["imdn2"]}, "imdn has no x8 (its scales: x2, x3, x4)"),
        ({"imdn@x3": sr_files["imdn2"]}, "does not fit imdn at x3 (x2)"),
        ({"rcan": sr_files["imdn2"]}, "fits rcan at none of x2, x3, x4, x8"),
        ({"bicubic": sr_files["imdn2"]}, "no model 'bicubic' to give weights to"),
    ]
    for weights, message in cases:
        with pytest.raises(InputError, match=re.escape(message)):
            check_resources(paper, _res(weights=weights))
    with pytest.raises(InputError, match="no model 'imdn' to give weights to"):  # no SR stage
        check_resources(load_paper("pgap"), _res(weights={"imdn": sr_files["imdn2"]}))


def _defense_labels(table: str, res: Resources) -> dict[str, str]:
    paper = load_paper("sr-defense")
    cells = [c for s in expand_table(paper.table(table), paper, res).stages for c in s]
    return {c.settings["defense"]: c.labels["defense"] for c in cells}


def test_each_sr_model_given_adds_a_row_labelled_with_its_hash(sr_files: dict[str, str]) -> None:
    given = {"imdn@x2": sr_files["imdn2"], "imdn@x3": sr_files["imdn3"], "carn-m": sr_files["carn"]}
    res = _res(weights=given)
    i2, i3, c = _sha6(sr_files["imdn2"]), _sha6(sr_files["imdn3"]), _sha6(sr_files["carn"])
    t1 = _defense_labels("table1", res)
    sr_rows = {k: v for k, v in t1.items() if k.startswith("sr:")}
    assert sr_rows == {
        f"sr:model=imdn,scale=2,weights={sr_files['imdn2']}": f"Wavelet + SR (IMDN x2 #{i2})",
        f"sr:model=carn-m,scale=2,weights={sr_files['carn']}": f"Wavelet + SR (CARN-M x2 #{c})",
    }
    t3 = _defense_labels("table3", res)
    assert set(t3.values()) == {
        "No defense",
        "SR (bicubic x2)",
        f"SR (IMDN x2 #{i2})",
        f"SR (CARN-M x2 #{c})",
    }
    assert all("denoise=none" in k for k in t3 if k.startswith("sr:"))
    t6 = _defense_labels("table6", res)
    assert list(dict.fromkeys(t6.values())) == [
        "No defense",
        f"Wavelet + SR (IMDN, S = 2, #{i2})",
        f"Wavelet + SR (IMDN, S = 3, #{i3})",
        f"Wavelet + SR (CARN-M, S = 2, #{c})",
        f"Wavelet + SR (CARN-M, S = 3, #{c})",
        f"Wavelet + SR (CARN-M, S = 4, #{c})",
    ]
    cifar = _defense_labels("cifar10", _res(weights=given, data={"cifar10": "/c"}))
    assert f"Wavelet + SR (IMDN x2 #{i2}), resized back" in cifar.values()
    paper = load_paper("sr-defense")
    manifold = expand_table(paper.table("manifold"), paper, res).stages[0][0]
    assert manifold.settings["defense"].startswith("sr:model=imdn,scale=2,weights=")
    for tid in ("table1", "cifar10", "table3", "table4", "table6", "manifold"):
        for stage in expand_table(paper.table(tid), paper, res).stages:
            for cell in stage:  # no path in any label (the files live in tmp)
                assert str(Path(sr_files["carn"]).parent) not in json.dumps(cell.labels)
                assert not any("toy" in n for n in cell.notes)


def test_without_sr_weights_the_bundled_row_says_it_is_the_toy_model() -> None:
    t1 = _defense_labels("table1", _res())
    assert t1["sr:model=demo-edsr,scale=2"] == "Wavelet + SR (bundled toy demo-edsr x2, not EDSR)"
    t6 = _defense_labels("table6", _res())
    assert sorted(k for k in t6 if k != "none") == [
        "sr:model=demo-edsr,scale=2",
        "sr:model=demo-edsr,scale=4",
    ]
    paper = load_paper("sr-defense")
    cell = next(
        c
        for c in expand_table(paper.table("table1"), paper, _res()).stages[0]
        if c.settings["defense"].startswith("sr:")
    )
    assert any("bundled toy demo-edsr" in n and "not EDSR" in n for n in cell.notes)
    assert "Wavelet + SR (Mustafa et al., EDSR x2)" in {
        p.row for p in paper.table("table1").published
    }


def test_tables_3_4_6_are_listed_with_the_papers_numbers() -> None:
    paper = load_paper("sr-defense")
    assert [t.id for t in paper.tables] == [
        "table1", "cifar10", "table3", "table4", "table6", "manifold"
    ]  # fmt: skip
    pub = {t.id: {(p.row, p.col): p.value for p in t.published} for t in paper.tables}
    assert pub["table3"][("EDSR x2 (paper)", "FGSM-2")] == 92.6
    assert pub["table3"][("SR-GAN x2 (paper)", "MDI²FGSM")] == 23.0
    assert pub["table4"][("Nearest, US", "Clean")] == 94.9
    assert pub["table4"][("Bicubic, DS → US", "MDI²FGSM")] == 1.7
    assert pub["table6"][("Wavelet + SR (paper, EDSR, S = 3)", "C&W")] == 77.7
    assert len(pub["table3"]) == 40 and len(pub["table4"]) == 90 and len(pub["table6"]) == 12
    t4 = _defense_labels("table4", _res())
    assert len(t4) == 10 and t4["interpolation:mode=bilinear,factor=2,direction=down-up"] == (
        "Bilinear, DS → US"
    )
    with pytest.raises(InputError, match="names no expansion"):
        raw = tomllib.loads(
            (Path(__file__).parents[1] / "src/advsr/papers/sr-defense.toml").read_text()
        )
        raw["table"][2]["runs"][0]["grid"]["defense"].append("*nope")
        parse_paper(raw)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tables_3_4_6_compute_in_quick_size_with_a_given_sr_model(
    cli, tmp_path: Path, sr_files: dict[str, str]
) -> None:
    args = ["reproduce", "sr-defense", "--table", "table3", "--table", "table4"]
    args += ["--table", "table6", "--weights", f"imdn={sr_files['imdn2']}"]
    res = cli(*args, "--store", str(tmp_path / "s.sqlite"), "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert [t["id"] for t in doc["tables"]] == ["table3", "table4", "table6"]
    ours = {t["id"]: {(c["row"], c["col"]) for c in t["cells"] if c["ours"] is not None}
            for t in doc["tables"]}  # fmt: skip
    h = _sha6(sr_files["imdn2"])
    assert (f"SR (IMDN x2 #{h})", "FGSM-2") in ours["table3"]
    assert ("SR (bicubic x2)", "Clean") in ours["table3"]
    assert ("Bicubic, US → DS", "I-FGSM") in ours["table4"] and len(ours["table4"]) == 30
    assert {r for r, _ in ours["table6"]} == {"No defense", f"Wavelet + SR (IMDN, S = 2, #{h})"}
    assert str(tmp_path) not in json.dumps([t["rows"] for t in doc["tables"]])
