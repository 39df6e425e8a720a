"""The inputs a review found giving tracebacks or silence, one test each, and the top-level
handler: interrupts, bugs, warnings, the oldest Typer advsr allows, forced progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ADVSR_PROGRESS": "0"}
OLD_TYPER = REPO / ".venv" / "typer-oldest"


def _one_line(res: object) -> str:
    code, err = (
        getattr(res, "code", getattr(res, "returncode", None)),
        res.err if hasattr(res, "err") else res.stderr,
    )  # type: ignore[attr-defined]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("advsr: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def refsr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from advsr.models.refsr import REFSR_MODELS
    from advsr.training.refsr import TrainRefSRConfig, train_refsr

    out = tmp_path_factory.mktemp("m") / "m.safetensors"
    train_refsr(
        TrainRefSRConfig(
            out=str(out), arch=dict(REFSR_MODELS.get("ttsr").tiny), hr_size=32, steps=1, batch=2
        ),
        progress=False,
    )
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"advsr_scale": "abc"}, "advsr_scale"),
        ({"advsr_arch": "{not json"}, "advsr_arch"),
        ({"advsr_scale": None}, "advsr_scale"),
        ({"advsr_arch": '{"n_feats": 200000}'}, "n_feats"),
        ({"advsr_arch": '{"n_feats": 4096, "n_resblocks": 4096}'}, "parameters"),
        ({"advsr_refsr": "rcan"}, "RefSR model"),
    ],
)
def test_crafted_model_metadata(refsr: Path, tmp_path: Path, cli, change, message) -> None:
    from safetensors import safe_open

    with safe_open(str(refsr), framework="pt") as fh:
        meta = dict(fh.metadata())
    for k, v in change.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    bad = tmp_path / "crafted.safetensors"
    save_file(load_file(str(refsr)), str(bad), metadata=meta)
    line = _one_line(cli("backdoor", "--model-file", str(bad)))
    assert message in line, line


def test_truncated_training_state(tmp_path: Path, cli) -> None:
    out = tmp_path / "m.safetensors"
    args = ["train-sr", "--model", "edsr-baseline", "--out", str(out), "--patch", "8"]
    args += ["--batch", "2", "--arch", "n_resblocks=1", "--arch", "n_feats=8"]
    assert cli(*args, "--steps", "1").code == 0
    state = tmp_path / "m.state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    line = _one_line(cli(*args, "--steps", "2", "--resume"))
    assert "damaged" in line or "state" in line, line


def test_keyboard_interrupt_and_bugs_in_a_real_process(tmp_path: Path) -> None:
    code = (
        "import sys; from advsr.cli import main, app\n"
        "@app.command('boom')\n"
        "def boom(): raise {exc}\n"
        "sys.argv = ['advsr', 'boom']; main()\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code.format(exc="KeyboardInterrupt")],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 130 and res.stderr.startswith("advsr: interrupted")
    res = subprocess.run(
        [sys.executable, "-c", code.format(exc="ZeroDivisionError('x')")],
        env={**ENV, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "internal error (ZeroDivisionError: x)" in res.stderr and "Traceback" not in res.stderr
    saved = list(tmp_path.glob("advsr-bug-*.txt"))
    assert saved and "ZeroDivisionError" in saved[0].read_text()
    res = subprocess.run(
        [sys.executable, "-c", code.format(exc="ZeroDivisionError('x')")],
        env={**ENV, "ADVSR_DEBUG": "1"},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "Traceback" in res.stderr


@pytest.mark.skipif(not OLD_TYPER.is_dir(), reason="the oldest Typer is installed by make")
def test_the_oldest_typer_allowed(tmp_path: Path) -> None:
    """pyproject allows typer>=0.12: the CLI (derived options included) works on 0.12.5."""
    env = {**ENV, "PYTHONPATH": f"{OLD_TYPER}{os.pathsep}{REPO / 'src'}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "advsr", *args], env=env, capture_output=True, text=True
        )

    version = subprocess.run(
        [sys.executable, "-c", "import typer; print(typer.__version__)"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert version == "0.12.5"
    ok = run("eval-sr", "--hr-crop", "32", "--rgb", "--json", "--store", str(tmp_path / "s"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["metric"]["channel"] == "rgb"
    for args in (["attack-sr", "--craft-on", "bad"], ["eval-sr", "--scale", "two"], ["frob"]):
        _one_line(run(*args))


def test_warnings_are_one_line(cli) -> None:
    res = cli("eval-sr", "--model", "carn-m", "--scale", "4", "--hr-crop", "32")
    assert res.code == 2 and res.err.count("\n") == 1, res.err  # untrained only on request
    assert "carn-m x4 has no weights: pass --weights FILE, or --random-weights" in res.err
    res = cli("eval-sr", "--model", "carn-m", "--scale", "4", "--hr-crop", "32",
              "--random-weights")  # fmt: skip
    assert res.code == 0 and res.err == "", res.err
    res = cli("eval-sr", "--hr-crop", "100000", "--scale", "4")
    assert "hr_crop 100000 is not smaller than any image" in res.err


def test_forced_progress_into_a_file(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "advsr", "eval-sr", "--hr-crop", "32", "--store",
         str(tmp_path / "s.sqlite")],
        env={**ENV, "ADVSR_PROGRESS": "1", "ADVSR_PROGRESS_EVERY": "0"},
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert res.returncode == 0
    assert "advsr: bicubic x2: 8/8 rows" in res.stderr  # a plain line, no control codes


def test_plain_progress_lines_only_for_long_work(capsys, monkeypatch) -> None:
    """Into a file or a pipe: no line for work shorter than the interval, then lines with
    the count, the rate and the ETA, at most one per interval."""
    import time

    from advsr import progress

    monkeypatch.delenv("ADVSR_PROGRESS", raising=False)  # the default: on
    monkeypatch.setenv("ADVSR_PROGRESS_EVERY", "0.2")
    with progress.progress_bar(3, "quick cell") as bar:
        for _ in range(3):
            bar.advance()
    assert capsys.readouterr().err == ""  # done within the interval: silent
    with progress.progress_bar(4, "slow cell") as bar:
        for _ in range(4):
            time.sleep(0.25)
            bar.advance()
    lines = capsys.readouterr().err.strip().splitlines()
    assert 2 <= len(lines) <= 4 and lines[-1].startswith("advsr: slow cell: 4/4 rows, ")
    assert " rows/s, " in lines[0] and "ETA" in lines[0]
    monkeypatch.setenv("ADVSR_PROGRESS", "0")
    with progress.progress_bar(2, "silenced") as bar:
        time.sleep(0.25)
        bar.advance(2)
    assert capsys.readouterr().err == ""


def test_stored_budgets_hold_exactly(cli) -> None:
    doc = json.loads(
        cli("attack-sr", "--model", "demo-edsr", "--hr-crop", "32", "--steps", "3", "--json").out
    )
    assert all(r["linf"] <= 8 / 255 for c in doc["cells"] for r in c["rows"])
    doc = json.loads(cli("attack-clf", "--attack", "pgd", "--limit", "16", "--json").out)
    assert doc["results"][0]["linf_mean"] <= 8 / 255


def test_paired_folders_honour_hr_crop(cli) -> None:
    set5 = REPO.parent / "shared" / "data" / "sr" / "Set5"
    if not set5.is_dir():
        pytest.skip("../shared/data is absent")
    doc = json.loads(cli("eval-sr", "--data", str(set5), "--scale", "4", "--hr-crop", "64",
                         "--json").out)  # fmt: skip
    assert {(r["height"], r["width"]) for r in doc["rows"]} == {(64, 64)}


def test_a_weight_file_cannot_demand_unbounded_memory(tmp_path: Path) -> None:
    from advsr.errors import InputError
    from advsr.models.sr import create_sr_model

    with pytest.raises(InputError, match="parameters"):
        create_sr_model("edsr", 4, arch={"n_feats": 4096, "n_resblocks": 4096})
    assert torch.get_default_dtype() == torch.float32
