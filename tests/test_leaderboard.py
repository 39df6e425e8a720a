"""The SR robustness leaderboard: score arithmetic, ranking (ties, missing entries), entries,
the quick site, the JSON document, resumption from the store, and one-line errors."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import advsr
from advsr.errors import InputError, ModelLoadError, UnknownNameError
from advsr.leaderboard.build import STRIP_CAPTIONS, leaderboard_cells, strip_images
from advsr.leaderboard.entries import Entry, parse_entries, split_scale
from advsr.leaderboard.protocol import get_protocol
from advsr.leaderboard.score import headline_score, rank_rows

# the test model is a TorchScript file (what --model accepts); torch deprecates scripting
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

# ------------------------------------------------------------------------------ arithmetic


def test_headline_score_is_the_mean_over_the_budgets() -> None:
    values = {"1/255": 40.0, "2/255": 36.5, "4/255": 33.0, "8/255": 29.25, "16/255": 25.0}
    alphas = list(values)
    assert headline_score(values, alphas) == pytest.approx((40 + 36.5 + 33 + 29.25 + 25) / 5)
    assert headline_score(values, alphas) == pytest.approx(32.75)
    # only the protocol's budgets count; any missing one makes the score missing
    assert headline_score({**values, "32/255": 0.0}, alphas) == pytest.approx(32.75)
    assert headline_score({k: v for k, v in values.items() if k != "4/255"}, alphas) is None
    assert headline_score({**values, "4/255": None}, alphas) is None
    assert headline_score({**values, "4/255": float("nan")}, alphas) is None
    assert headline_score(values, []) is None


def test_ranking_ties_and_missing_entries() -> None:
    rows = [
        {"entry": "zeta", "score": 30.004},
        {"entry": "alpha", "score": 30.001},  # equal to 0.01 dB: shares rank 2 with zeta
        {"entry": "none", "score": None},
        {"entry": "best", "score": 31.5},
        {"entry": "after", "score": 29.0},
        {"entry": "also-none", "score": None},
    ]
    ranked = rank_rows(rows)
    assert [(r["entry"], r["rank"]) for r in ranked] == [
        ("best", 1),
        ("alpha", 2),
        ("zeta", 2),
        ("after", 4),  # competition ranking: 1, 2, 2, 4
        ("also-none", None),
        ("none", None),
    ]
    assert rows[0] == {"entry": "zeta", "score": 30.004}  # inputs are not modified
    assert rank_rows([{"entry": "a", "score": 30.01}, {"entry": "b", "score": 30.02}])[1][
        "rank"
    ] == 2  # fmt: skip


# ------------------------------------------------------------------------------ entries


def test_entries_defaults_weights_per_scale_and_files(tmp_path: Path) -> None:
    w = tmp_path / "IMDN_x4.pth"
    w.write_bytes(b"not checked here")
    es = parse_entries([f"imdn@x4={w}", f"carn-m={w}"], [])
    names = [e.name for e in es]
    assert names == ["bicubic", "demo-edsr", "demo-carn-m", "imdn", "carn-m"]
    imdn, carn = es[3], es[4]
    assert imdn.weights_at(4) == str(w) and imdn.weights_at(2) is None
    assert imdn.missing_at(2) == "imdn is given for x4 only" and imdn.missing_at(4) is None
    assert carn.missing_at(2) is None and carn.weights_at(3) == str(w)
    assert es[0].weight_file(2) is None  # bicubic has no parameters
    assert es[1].weight_file(4) is not None and es[1].weight_file(4).is_file()
    assert split_scale("a@b@x2", "--model") == ("a@b", 2)
    assert split_scale("me@home", "--model") == ("me@home", 0)


@pytest.mark.parametrize(
    ("weights", "models", "error", "match"),
    [
        (["carn-m"], [], InputError, "NAME=FILE"),
        (["carn-m=/no/such/carn_m.pth"], [], ModelLoadError, "no such file"),
        (["carnm=x.pth"], [], UnknownNameError, "did you mean"),
        (["demo-edsr=x.pth"], [], InputError, "default entry"),
        (["bicubic=x.pth"], [], InputError, "default entry"),
        ([], ["/no/such/model.pt"], ModelLoadError, "no such file"),
        ([], ["carn-m"], InputError, "needs weights"),
        ([], ["edsr-basline"], UnknownNameError, "did you mean"),
    ],
)
def test_bad_entries(weights: list[str], models: list[str], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_entries(weights, models)


def test_weights_given_twice_for_one_scale(tmp_path: Path) -> None:
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    with pytest.raises(InputError, match="twice"):
        parse_entries([f"imdn@x4={w}", f"imdn@4={w}"], [])
    with pytest.raises(InputError, match="twice"):
        parse_entries([f"imdn={w}", f"imdn@x2={w}"], [])


def test_protocol_and_its_cells() -> None:
    p = get_protocol("v1")
    assert p.alphas == (1, 2, 4, 8, 16) and p.steps == 50 and p.scales == (2, 4)
    assert p.apgd_attack == "basic@8/255:schedule=apgd" and p.reference == "clean-8bit"
    q = get_protocol("v1", quick=True).with_scales([4])
    assert (q.alphas, q.steps, q.hr_crop, q.scales, q.quick) == ((2, 8), 5, 48, (4,), True)
    with pytest.raises(InputError, match=">= 2"):
        p.with_scales([1])
    with pytest.raises(UnknownNameError, match="v1"):
        get_protocol("v2")
    entries = [Entry("bicubic", "bicubic"), Entry("demo-edsr", "demo-edsr")]
    cells = leaderboard_cells(q, entries, "samples", show={4: "chelsea"})
    kinds = [t.kind for t, _ in cells]
    # per entry: clean + 2 basic + universal + apgd; transfer: both ordered pairs
    assert kinds.count("clean") == 2 and kinds.count("basic") == 4
    assert kinds.count("universal") == 2 and kinds.count("apgd") == 2
    assert kinds.count("transfer") == 2
    shown = [c for t, (_, c) in cells if t.kind == "basic" and c["show"]]
    assert [c["eps"] for c in shown] == [8 / 255, 8 / 255]  # the strip's budget only
    apgd = next(c for t, (_, c) in cells if t.kind == "apgd")
    assert apgd["attack"] == "basic@8/255:schedule=apgd" and apgd["steps"] == 5


def test_quick_samples_folder_is_stable_and_repaired(tmp_path: Path) -> None:
    from advsr.data.samples import sample_paths
    from advsr.leaderboard.protocol import quick_samples_dir

    folder = quick_samples_dir(tmp_path)
    src = sample_paths()
    assert sorted(p.name for p in folder.iterdir()) == ["chelsea.png", "china.jpg"]
    assert (folder / "china.jpg").read_bytes() == src["china"].read_bytes()
    assert quick_samples_dir(tmp_path) == folder
    (folder / "extra.png").write_bytes(b"x")  # a damaged folder is made again
    assert sorted(p.name for p in quick_samples_dir(tmp_path).iterdir()) == [
        "chelsea.png",
        "china.jpg",
    ]


def test_strip_images_are_readable_crops() -> None:
    g = torch.Generator().manual_seed(0)
    lr = [torch.rand(1, 3, 30, 40, generator=g) for _ in range(3)]
    sr = [torch.rand(1, 3, 120, 160, generator=g) for _ in range(2)]
    strip = strip_images([*lr, *sr], scale=4, alpha=8)
    assert [c.split(" ")[0] for c, _ in strip] == [c.split(" ")[0] for c in STRIP_CAPTIONS]
    sizes = {(int.from_bytes(p[16:20], "big"), int.from_bytes(p[20:24], "big")) for _, p in strip}
    assert sizes == {(240, 240)}  # 30 px LR crop x 8, 120 px SR crop x 2: one display size


def test_strip_recomputed_when_the_cell_was_stored_without_its_figure(tmp_path: Path) -> None:
    """A basic-attack cell first run without ``show`` (e.g. by ``attack-sr``) has no figure:
    the strip is recomputed, equal to the one read from a cell that stored it."""
    from advsr.engine.driver import run_cells
    from advsr.engine.store import ResultStore
    from advsr.leaderboard.build import build_leaderboard

    p = get_protocol("v1", quick=True).with_scales([2])
    entries = [Entry("bicubic", "bicubic")]
    stored = build_leaderboard(p, entries, "samples", ResultStore(":memory:"), progress=False)
    other = ResultStore(tmp_path / "s.sqlite")
    first = [c for t, c in leaderboard_cells(p, entries, "samples") if t.kind == "basic"]
    run_cells(first, other, progress=False)  # the basic cells, without figures
    assert not any(other.artifacts(c["cell_id"]) for c in other.cells())
    again = build_leaderboard(p, entries, "samples", other, progress=False)
    assert again.doc["computed"] > 0 and again.doc["rows"][0]["score"] == pytest.approx(
        stored.doc["rows"][0]["score"]
    )
    assert again.strips == stored.strips
    assert len(stored.strips["bicubic", 2]) == len(STRIP_CAPTIONS)


# ------------------------------------------------------------------------------ the command


class _Tiny(nn.Module):
    """A TorchScript x4 SR model: an identity conv then bilinear upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            for c in range(3):
                self.conv.weight[c, c, 1, 1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=4.0, mode="bilinear").clamp(0, 1)


def _run(*args: str) -> tuple[int, str, str]:
    """``advsr ARGS`` in-process: exit status, stdout, stderr."""
    from advsr.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    argv = sys.argv
    sys.argv = ["advsr", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three quick runs on one store: the default entries; then with a model file for x4
    only and the site; then the same again."""
    tmp = tmp_path_factory.mktemp("lb")
    tiny = tmp / "tiny.pt"
    torch.jit.save(torch.jit.script(_Tiny()), str(tiny))
    store = tmp / "store.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVSR_PROGRESS", "0")
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        base = ("leaderboard", "--quick", "--json", "--store", str(store))
        out: dict[str, Any] = {"tmp": tmp, "tiny": tiny, "store": store}
        for name, extra in (
            ("first", ()),
            ("added", ("--model", f"{tiny}@x4", "--out", str(tmp / "site"))),
            ("again", ("--model", f"{tiny}@x4")),
        ):
            code, text, err = _run(*base, *extra)
            assert code == 0, err
            out[name] = json.loads(text)
            if name == "first":
                from advsr.engine.store import ResultStore

                with ResultStore(store) as st:
                    out["cells_before"] = {c["cell_id"] for c in st.cells()}
    return out


def test_json_document(runs: dict[str, Any]) -> None:
    doc = runs["added"]
    assert set(doc) >= {
        "leaderboard", "protocol", "score", "data", "entries", "rows", "transfer",
        "figure_images", "provenance", "cells", "computed", "from_store", "site",
    }  # fmt: skip
    p = doc["protocol"]
    assert p["name"] == "v1" and p["quick"] and p["label"] == "v1 (quick)"
    assert p["alphas"] == ["2/255", "8/255"] and p["steps"] == 5 and p["scales"] == [2, 4]
    assert doc["data"]["label"] == "samples (chelsea, china)" and doc["data"]["files"] == 2
    names = [e["name"] for e in doc["entries"]]
    assert names == ["bicubic", "demo-edsr", "demo-carn-m", "tiny"]
    assert len(doc["rows"]) == 8  # every entry at every scale, missing ones included
    date = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    for r in doc["rows"]:
        assert r["protocol"] == "v1 (quick)" and r["advsr_version"] == advsr.__version__
        assert date.match(r["date"])
        if r["missing"]:
            continue
        assert set(r["basic"]) == {"2/255", "8/255"}
        for m in (*r["basic"].values(), r["universal"], r["apgd"]):
            assert {"lr_psnr", "sr_psnr", "sr_psnr_y", "sr_hr_psnr", "sr_hr_psnr_y"} <= set(m)
        assert 0 < r["clean"]["ssim_y"] <= 1 and r["clean"]["psnr_y"] > 15
        assert r["basic"]["8/255"]["sr_psnr"] < r["basic"]["2/255"]["sr_psnr"]
    prov = doc["provenance"]
    assert prov["advsr_version"] == advsr.__version__ and "leaderboard" in prov["command"]
    assert re.fullmatch(r"[0-9a-f]{64}", prov["config_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", prov["data"]["sha256"])
    assert prov["device"].startswith(("cpu", "cuda"))


def test_weights_hashes_and_parameter_counts(runs: dict[str, Any]) -> None:
    from advsr.models.sr import create_sr_model, weights_dir

    rows = {(r["entry"], r["scale"]): r for r in runs["added"]["rows"]}
    bundled = weights_dir() / "demo-edsr_x4.safetensors"
    assert (
        rows["demo-edsr", 4]["weights_sha256"] == hashlib.sha256(bundled.read_bytes()).hexdigest()
    )
    model = create_sr_model("demo-edsr", 4)
    assert rows["demo-edsr", 4]["params"] == sum(p.numel() for p in model.parameters())
    assert rows["bicubic", 2]["weights_sha256"] is None and rows["bicubic", 2]["params"] == 0
    tiny_sha = hashlib.sha256(runs["tiny"].read_bytes()).hexdigest()
    assert rows["tiny", 4]["weights_sha256"] == tiny_sha and rows["tiny", 4]["params"] == 84


def test_missing_entry_is_not_ranked(runs: dict[str, Any]) -> None:
    doc = runs["added"]
    x2 = [r for r in doc["rows"] if r["scale"] == 2]
    assert [r["entry"] for r in x2][-1] == "tiny"
    tiny = x2[-1]
    assert tiny["rank"] is None and tiny["score"] is None and tiny["missing"]
    assert [r["rank"] for r in x2[:-1]] == [1, 2, 3]
    x4 = [r for r in doc["rows"] if r["scale"] == 4]
    assert sorted(r["rank"] for r in x4) == [1, 2, 3, 4]
    assert [r["score"] for r in x4] == sorted((r["score"] for r in x4), reverse=True)
    t2, t4 = doc["transfer"]
    assert len(t2["matrix"]) == 3 and len(t4["matrix"]) == 4 and "tiny" in t4["sources"]
    for t in (t2, t4):  # the diagonal is the white-box attack at the transfer budget
        for i, name in enumerate(t["sources"]):
            row = next(r for r in doc["rows"] if r["entry"] == name and r["scale"] == t["scale"])
            assert t["matrix"][i][i] == row["basic"]["8/255"]["sr_psnr"]
            assert all(v is not None for v in t["matrix"][i])


def test_score_equals_a_hand_computation_from_the_stored_rows(runs: dict[str, Any]) -> None:
    from advsr.engine.store import ResultStore

    with ResultStore(runs["store"]) as st:
        stored = st.rows(experiment="attack-sr", where={"attack": "basic"})
    for r in runs["again"]["rows"]:
        if r["missing"]:
            continue
        means = []
        for eps in (2 / 255, 8 / 255):
            vals = [
                x["sr_psnr"]
                for x in stored
                if x["model"] == r["model"] and x["scale"] == r["scale"] and x["eps"] == eps
            ]
            assert len(vals) == 2  # two images
            means.append(sum(vals) / len(vals))
        assert r["score"] == pytest.approx(sum(means) / 2, abs=1e-9)


def test_a_new_entry_adds_only_its_own_cells_and_a_rerun_computes_nothing(
    runs: dict[str, Any],
) -> None:
    from advsr.engine.store import ResultStore

    first, added, again = runs["first"], runs["added"], runs["again"]
    assert first["computed"] > 0 and first["from_store"] == 0
    with ResultStore(runs["store"]) as st:
        new = [c for c in st.cells() if c["cell_id"] not in runs["cells_before"]]
        tiny = str(runs["tiny"])
        for c in new:
            cfg = c["config"]
            assert tiny in (cfg.get("model"), cfg.get("source"), *cfg.get("targets", [])), cfg
            assert cfg["scale"] == 4
        assert added["computed"] == sum(c["stored"] for c in new)
    assert added["from_store"] == first["computed"]  # the default entries' rows, read back
    assert again["computed"] == 0 and again["from_store"] == added["computed"] + first["computed"]
    for a, b in zip(again["rows"], added["rows"], strict=True):
        assert (a["entry"], a["scale"], a["rank"], a["score"]) == (
            b["entry"], b["scale"], b["rank"], b["score"]
        )  # fmt: skip


def test_quick_site_files(runs: dict[str, Any]) -> None:
    site = runs["tmp"] / "site"
    assert runs["added"]["site"] == str(site / "index.html")
    names = {p.name for p in (site / "models").iterdir()}
    assert names == {"bicubic.html", "demo-edsr.html", "demo-carn-m.html", "tiny.html"}
    index = (site / "index.html").read_text()
    assert "<table id='board'>" in index and "<svg" in index and "Provenance" in index
    assert "http://" not in index.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in index  # nothing fetched at view time
    assert json.loads((site / "leaderboard.json").read_text())["rows"] == json.loads(
        json.dumps(runs["added"]["rows"])
    )
    page = (site / "models" / "demo-edsr.html").read_text()
    assert page.count("data:image/png;base64,") == 2 * len(STRIP_CAPTIONS)
    assert "x2 only" not in page and "Transferability" in page


def test_table_output_and_missing_note(runs: dict[str, Any]) -> None:
    code, out, _ = _run(
        "leaderboard", "--quick", "--store", str(runs["store"]), "--model", f"{runs['tiny']}@x4"
    )
    assert code == 0
    assert "x2" in out and "x4" in out and "tiny: tiny is given for x4 only" in out
    assert "0 row(s) computed" in out


# ------------------------------------------------------------------------------ bad input


def _one_line(code: int, err: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advsr: error: "), err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--protocol", "v9"), "unknown leaderboard protocol 'v9'"),
        (("--weights", "carn-m=/no/such/carn_m.pth"), "no such file"),
        (("--weights", "carn-m"), "NAME=FILE"),
        (("--model", "/no/such/model.pt@x4"), "no such file"),
        (("--scale", "1"), ">= 2"),
        (("--scale", "4", "--scale", "4"), "twice"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    cli, tmp_path: Path, args: tuple[str, ...], match: str
) -> None:
    res = cli("leaderboard", "--quick", *args)
    _one_line(res.code, res.err)
    assert match in res.err
    assert not (tmp_path / "store.sqlite").exists()  # refused before the store is touched


def test_out_must_be_a_folder(cli, tmp_path: Path) -> None:
    f = tmp_path / "file.html"
    f.write_text("x")
    res = cli("leaderboard", "--quick", "--out", str(f))
    _one_line(res.code, res.err)
    assert "is a file" in res.err


def test_weights_that_do_not_fit_fail_before_any_work(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bad = tmp_path / "carn_m.pth"
    torch.save({"nothing": torch.zeros(1)}, bad)
    res = cli("leaderboard", "--quick", "--scale", "4", "--weights", f"carn-m={bad}")
    _one_line(res.code, res.err)
    assert not (tmp_path / "store.sqlite").exists()
