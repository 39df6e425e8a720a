"""Bad inputs against every command: each gives exit status 2 and one line on stderr, no
traceback, nothing written to the store or to disk, and no pickled payload ever runs.

The cases are generated: broken files of every kind (missing, empty, truncated, wrong magic,
a decompression bomb's header, a named pipe, a symlink loop, a folder for a file and a file
for a folder), unknown and near-miss names, bad numbers (0, negative, nan, inf, huge, wrong
type), broken specs, and weight files that are pickles with payloads, corrupt safetensors or
safetensors with crafted metadata. ``test_case_count`` keeps the count at 150 or more.
"""

# ruff: noqa: E501, RUF005 - the case tables read best one case per line

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from advsr.io import save_safetensors

PAYLOAD = "PAYLOAD_RAN"  # a file a pickled payload would create


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height``, with a few bytes of pixel data: what a
    decompression bomb looks like before it is decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    png = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)


def _files(root: Path) -> dict[str, Path]:
    """Every kind of broken input file, made once per test in ``root / inputs``."""
    from PIL import Image

    d = root / "inputs"
    d.mkdir()
    good = d / "good.png"
    Image.new("RGB", (48, 48), (120, 30, 200)).save(good)
    f: dict[str, Path] = {"good": good}
    f["missing"] = d / "missing.png"
    f["empty"] = d / "empty.png"
    f["empty"].write_bytes(b"")
    f["truncated"] = d / "truncated.png"
    f["truncated"].write_bytes(good.read_bytes()[:60])
    f["magic"] = d / "text.png"
    f["magic"].write_text("this is not an image")
    f["bomb"] = d / "bomb.png"
    _png_header(f["bomb"], 60000, 60000)
    f["bomb14k"] = d / "bomb14k.png"
    _png_header(f["bomb14k"], 14000, 14000)
    f["fifo"] = d / "fifo"
    os.mkfifo(f["fifo"])
    f["loop"] = d / "loop.png"
    f["loop"].symlink_to(f["loop"])
    f["folder"] = d / "a_folder"
    f["folder"].mkdir()
    for kind in ("truncated", "magic", "bomb", "empty"):  # folders holding one bad image
        sub = d / f"dir_{kind}"
        sub.mkdir()
        (sub / "img.png").write_bytes(f[kind].read_bytes())
        f[f"dir_{kind}"] = sub
    marker = root / PAYLOAD
    f["pickle"] = d / "evil.pth"
    f["pickle"].write_bytes(pickle.dumps(_Payload(str(marker))))
    f["zip_pickle"] = d / "evil_zip.pth"
    torch.save({"x": torch.zeros(1)}, f["zip_pickle"])  # a real torch file...
    data = f["zip_pickle"].read_bytes().replace(b"torch._utils", b"os.system\x00\x00\x00")
    f["zip_pickle"].write_bytes(data)  # ...whose pickle now names os.system
    f["garbage_pth"] = d / "garbage.pth"
    f["garbage_pth"].write_bytes(bytes(range(256)) * 4)
    f["bad_safetensors"] = d / "bad.safetensors"
    f["bad_safetensors"].write_bytes(b"\xff" * 64)
    f["tiny_safetensors"] = d / "tiny.safetensors"
    save_safetensors(f["tiny_safetensors"], {"w": torch.zeros(2)})
    for name, meta in {
        "meta_scale_abc": {"advsr_model": "edsr-baseline", "advsr_scale": "abc"},
        "meta_arch_json": {"advsr_model": "edsr-baseline", "advsr_arch": "{not json"},
        "meta_arch_huge": {"advsr_model": "edsr-baseline", "advsr_arch": '{"n_feats": 200000}'},
    }.items():
        f[name] = d / f"{name}.safetensors"
        save_safetensors(f[name], {"w": torch.zeros(2)}, meta)
    f["spec_file_is_folder"] = f["folder"]
    f["file_parent"] = good / "out.html"  # a path below a file
    return f


# ------------------------------------------------------------------------------ the cases

Case = tuple[str, Callable[[dict[str, Path]], list[str]]]


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(label: str, fn: Callable[[dict[str, Path]], list[str]]) -> None:
        cases.append((label, fn))

    bad_files = [
        "missing", "empty", "truncated", "magic", "bomb", "bomb14k", "fifo", "loop",
        "dir_truncated", "dir_magic", "dir_bomb", "dir_empty",
    ]  # fmt: skip
    for cmd in ("eval-sr", "attack-sr"):
        for k in bad_files:
            add(f"{cmd} --data {k}", lambda f, c=cmd, k=k: [c, "--data", str(f[k]), "--steps", "1"]
                if c == "attack-sr" else [c, "--data", str(f[k])])  # fmt: skip
    for k in ("missing", "folder", "fifo", "magic", "good"):
        add(f"attack-clf --data {k}", lambda f, k=k: ["attack-clf", "--data", str(f[k])])
        add(f"defend --data {k}", lambda f, k=k: ["defend", "--data", str(f[k])])
    weight_files = [
        "missing", "empty", "pickle", "zip_pickle", "garbage_pth", "bad_safetensors",
        "tiny_safetensors", "meta_scale_abc", "meta_arch_json", "meta_arch_huge", "folder",
        "fifo",
    ]  # fmt: skip
    for k in weight_files:
        add(f"eval-sr --weights {k}",
            lambda f, k=k: ["eval-sr", "--model", "edsr-baseline", "--weights", str(f[k])])  # fmt: skip
        add(f"eval-sr --model {k}", lambda f, k=k: ["eval-sr", "--model", str(f[k])])
        add(f"attack-clf --weights {k}",
            lambda f, k=k: ["attack-clf", "--model", "resnet20-cifar10", "--weights", str(f[k])])  # fmt: skip
        add(f"backdoor --model-file {k}", lambda f, k=k: ["backdoor", "--model-file", str(f[k])])
        if not k.startswith(("tiny", "meta")):  # those are legal files for convert
            add(f"convert {k}",
                lambda f, k=k: ["convert", str(f[k]), str(f["folder"] / "o.safetensors")])  # fmt: skip
        add(f"attack-sr --apply-perturbation {k}",
            lambda f, k=k: ["attack-sr", "--apply-perturbation", str(f[k])])  # fmt: skip
    names = [
        ("eval-sr", "--model", "edsrr"), ("eval-sr", "--data", "sampels"),
        ("attack-sr", "--attack", "basik"), ("attack-sr", "--reference", "clean-8"),
        ("attack-sr", "--defense", "self-ensembl"), ("attack-clf", "--attack", "pdg"),
        ("attack-clf", "--attack", "pgd@8/255x"), ("attack-clf", "--model", "resnet21-cifar10"),
        ("attack-clf", "--loss", "hinge"), ("defend", "--defense", "medain"),
        ("defend", "--defense", "median:size=3,size=5"), ("defend", "--defense", "median:sise=3"),
        ("defend", "--mode", "adaptiv"), ("perceptual", "--sweep", "fpgapp=0.1"),
        ("explain", "--attack", "fgsmm"), ("explain", "--layer", "net.no.such.layer"),
        ("explain", "--method", "gradcam+++"), ("manifold", "--attack", "deepfoo"),
        ("manifold", "--defense", "sr:modle=x"), ("train-refsr", "--trigger", "badnet"),
        ("train-refsr", "--model", "ttrs"), ("train-sr", "--model", "edsrbaseline"),
        ("train-classifier", "--model", "digits"), ("list", "atacks", ""),
        ("report", "--experiment", "eval-rs"), ("transfer", "--model", "bicubik"),
        ("eval-sr", "--device", "quantum"), ("attack-sr", "--attack", "pgd"),
        ("attack-clf", "--attack", "basic"),
    ]  # fmt: skip
    for cmd, opt, val in names:
        add(f"{cmd} {opt} {val}", lambda f, c=cmd, o=opt, v=val: _named(c, o, v, f))
    numbers = {
        "eval-sr": [("--scale", ["0", "-2", "two", "nan", "1000000"]), ("--hr-crop", ["0", "-1", "x"]),
                    ("--crop-border", ["-1", "abc"])],
        "attack-sr": [("--alpha", ["-1/255", "2", "nan", "inf", "1/0", "abc"]), ("--steps", ["0", "-5", "1.5"]),
                      ("--batch-size", ["0"]), ("--crop", ["0"])],
        "attack-clf": [("--eps", ["-0.1", "nan", "inf", "abc"]), ("--steps", ["0"]), ("--limit", ["0"]),
                       ("--kappa", ["-1", "nan"]), ("--batch-size", ["0"])],
        "defend": [("--eot", ["0"]), ("--limit", ["-3"]), ("--eps", ["nan"])],
        "perceptual": [("--ssim-target", ["0", "1", "nan", "2"]), ("--psnr-target", ["nan", "-3", "inf"]),
                       ("--limit", ["0"])],
        "explain": [("--threshold", ["0", "1", "nan"]), ("--limit", ["0"])],
        "manifold": [("--limit", ["2"]), ("--epochs", ["0"]), ("--hidden", ["0"])],
        "train-sr": [("--steps", ["0"]), ("--lr", ["0", "-1", "nan"]), ("--patch", ["2"])],
        "train-refsr": [("--rate", ["-0.1", "1.5", "nan"]), ("--hr-size", ["4"])],
    }  # fmt: skip
    for cmd, opts in numbers.items():
        for opt, values in opts:
            for v in values:
                add(f"{cmd} {opt} {v}", lambda f, c=cmd, o=opt, v=v: _with_out(c, f) + [o, v])
    specs = {
        "syntax": "experiment = [",
        "unknown experiment": 'experiment = "eval-rs"\n',
        "unknown key": 'experiment = "eval-sr"\nfoo = 1\n',
        "unknown setting": 'experiment = "eval-sr"\n[settings]\nmodle = "x"\n',
        "empty grid": 'experiment = "eval-sr"\n[grid]\nscale = []\n',
        "grid not a list": 'experiment = "eval-sr"\n[grid]\nscale = 2\n',
        "both grid and settings": 'experiment = "eval-sr"\n[grid]\nscale = [2]\n[settings]\nscale = 3\n',
        "duplicate key": 'experiment = "eval-sr"\nexperiment = "eval-sr"\n',
        "wrong type": 'experiment = "eval-sr"\n[settings]\nscale = "two"\n',
        "nan value": 'experiment = "attack-sr"\n[settings]\neps = nan\n',
        "huge grid": 'experiment = "eval-sr"\n[grid]\nscale = [' + ",".join(["2"] * 400) + "]\n"
                     "hr_crop = [" + ",".join(["8"] * 400) + "]\n",
        "bad second cell": 'experiment = "eval-sr"\n[grid]\ndata = ["samples", "nosuchdata"]\n',
        "run not tables": 'run = 3\n',
        "run with extra key": '[[run]]\nexperiment = "eval-sr"\n\nfoo = 1\n',
        "mixed bad": '[[run]]\nexperiment = "eval-sr"\n[[run]]\nexperiment = "attack-clf"\n'
                     'settings = { attack = "pdg" }\n',
        "binary": "\x00\x01\x02",
    }  # fmt: skip
    for label, text in specs.items():
        add(f"run spec {label}", lambda f, t=text: ["run", _spec(f, t)])
    add("run spec missing", lambda f: ["run", str(f["missing"])])
    add("run spec folder", lambda f: ["run", str(f["folder"])])
    outputs = [
        ("defend", "--report"), ("explain", "--report"), ("eval-sr", "--report"),
        ("attack-sr", "--save-perturbation"), ("demo", "--report"), ("report", "--out"),
        ("train-sr", "--out"), ("train-classifier", "--out"), ("train-refsr", "--out"),
    ]  # fmt: skip
    for cmd, opt in outputs:
        add(f"{cmd} {opt} below a file", lambda f, c=cmd, o=opt: _output(c, o, f))
    add("convert output below a file",
        lambda f: ["convert", str(f["tiny_safetensors"]), str(f["good"] / "x.safetensors")])  # fmt: skip
    for store in ("folder", "file_parent", "magic", "fifo"):
        add(f"eval-sr --store {store}", lambda f, s=store: ["eval-sr", "--store", str(f[s])])
    add("results --store missing", lambda f: ["results", "--store", str(f["missing"])])
    add("results --where no equals", lambda f: ["results", "--where", "noequals"])
    add("train-sr --arch abc", lambda f: _with_out("train-sr", f) + ["--arch", "n_feats=abc"])
    add("train-sr --arch -4", lambda f: _with_out("train-sr", f) + ["--arch", "n_feats=-4"])
    add("train-sr --arch huge",
        lambda f: _with_out("train-sr", f) + ["--arch", "n_feats=4096", "--arch", "n_resblocks=4096"])  # fmt: skip
    add("train-sr --arch unknown", lambda f: _with_out("train-sr", f) + ["--arch", "colour=1"])
    add("train-sr --arch twice",
        lambda f: _with_out("train-sr", f) + ["--arch", "n_feats=8", "--arch", "n_feats=9"])  # fmt: skip
    add("train-sr --resume without a checkpoint", lambda f: _with_out("train-sr", f) + ["--resume"])
    add("unknown command", lambda f: ["frobnicate"])
    reproduce = {
        "unknown paper": lambda f: ["reproduce", "sr-atacks"],
        "no paper": lambda f: ["reproduce"],
        "bad size": lambda f: ["reproduce", "pgap", "--size", "0"],
        "unknown slot": lambda f: ["reproduce", "pgap", "--data", f"mnist={f['folder']}"],
        "missing data": lambda f: ["reproduce", "pgap", "--data", f"imagenet={f['missing']}"],
        "unknown model": lambda f: ["reproduce", "sr-attacks", "--weights", f"edsrr={f['good']}"],
        "missing weights": lambda f: [
            "reproduce",
            "sr-attacks",
            "--weights",
            f"edsr={f['missing']}",
        ],
        "folder weights": lambda f: ["reproduce", "sr-attacks", "--weights", f"edsr={f['folder']}"],
        "report below a file": lambda f: [
            "reproduce",
            "pgap",
            "--report",
            str(f["good"] / "r.html"),
        ],
    }
    for kind in ("pickle", "zip_pickle", "garbage_pth", "bad_safetensors", "tiny_safetensors"):
        reproduce[f"weights {kind}"] = lambda f, k=kind: [
            "reproduce",
            "sr-attacks",
            "--weights",
            f"carn-m={f[k]}",
        ]
    for label, make in reproduce.items():
        add(f"reproduce {label}", make)
    return cases


def _named(cmd: str, opt: str, val: str, f: dict[str, Path]) -> list[str]:
    if cmd == "list":
        return [cmd, opt]
    return _with_out(cmd, f) + [opt, val]


def _with_out(cmd: str, f: dict[str, Path]) -> list[str]:
    """The options a command needs besides the bad one (an output path, a model file)."""
    out = str(f["folder"] / f"{cmd}.safetensors")
    if cmd in ("train-sr",):
        return [cmd, "--model", "edsr-baseline", "--out", out, "--steps", "1"]
    if cmd in ("train-classifier", "train-refsr"):
        return [cmd, "--out", out]
    if cmd == "report":
        return [cmd, "--out", str(f["folder"] / "r.html")]
    if cmd == "transfer":
        return [cmd]
    return [cmd]


def _spec(f: dict[str, Path], text: str) -> str:
    path = f["folder"].parent / f"spec_{abs(hash(text))}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _output(cmd: str, opt: str, f: dict[str, Path]) -> list[str]:
    bad = str(f["good"] / "x.safetensors" if opt != "--report" else f["good"] / "x.html")
    if cmd == "report":
        return [cmd, "--experiment", "eval-sr", "--out", str(f["good"] / "x.html")]
    if cmd in ("train-sr", "train-classifier", "train-refsr"):
        base = _with_out(cmd, f)
        i = base.index("--out")
        return base[:i] + ["--out", bad] + base[i + 2 :]
    if cmd == "demo":
        return [cmd, "--quick", opt, bad]
    return [cmd, opt, bad]


CASES = _cases()


def test_case_count() -> None:
    assert len(CASES) >= 150, len(CASES)


def _snapshot(root: Path) -> set[tuple[str, int]]:
    out = set()
    for p in root.rglob("*"):
        if p.is_symlink() or not p.is_file():
            continue
        out.add((str(p.relative_to(root)), p.stat().st_size))
    return out


@pytest.mark.parametrize("label", [c[0] for c in CASES])
def test_bad_input(label: str, cli, tmp_path: Path, monkeypatch) -> None:
    fn = dict(CASES)[label]
    files = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = fn(files)
    before = _snapshot(tmp_path)
    res = cli(*[a for a in args if a != ""])
    assert res.code == 2, (label, res.code, res.err, res.out[-300:])
    lines = [ln for ln in res.err.splitlines() if ln.strip() and "advsr: warning:" not in ln]
    assert len(lines) == 1 and lines[0].startswith("advsr: error: "), (label, res.err)
    assert "Traceback" not in res.err + res.out, label
    assert not (tmp_path / PAYLOAD).exists(), f"{label}: a pickled payload ran"
    after = _snapshot(tmp_path)
    assert after == before, (label, after - before)  # nothing written (no store, no output)
    json.dumps(args)  # the case is plain data
