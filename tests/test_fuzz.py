"""Bad inputs against every command: each gives exit status 2 and one line on stderr, no
traceback, nothing written to the store or to disk, and no pickled payload ever runs.

The cases are generated: broken files of every kind (missing, empty, truncated, wrong magic,
a decompression bomb's header, a named pipe, a symlink loop, a folder for a file and a file
for a folder), unknown and near-miss names, bad numbers (0, negative, nan, inf, huge, wrong
type), broken specs, and weight files that are pickles with payloads, corrupt safetensors or
safetensors with crafted metadata. Then (issue 26) stores that are not sound writable advsr
stores (another program's SQLite, not SQLite, damaged pages, damaged JSON, a dropped table,
read-only files and folders), outputs that cannot be written (``/proc``, read-only folders
and files), values that mean nothing or contradict each other (NaN, inf and integer weights
or perturbations, an option the chosen attack or model does not use, a budget given twice,
folders with a broken symlink or a named pipe), upper bounds (steps, threads, defense sizes,
EOT draws, memory, an empty Ray address) and messages that must name what to fix. The
snapshot hashes every small file, so a store rewritten in place is caught, and records
folders and links, so an empty output folder is caught too. ``test_case_count`` keeps the
count at 360 or more.
"""

# ruff: noqa: E501, RUF005 - the case tables read best one case per line

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from advsr.io import save_safetensors
from tests.conftest import damage_rows_page, sql_run

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

Args = Callable[[dict[str, Path]], list[str]]
Case = tuple[str, Args, dict[str, str], tuple[str, ...]]
"""``(label, args, env, expect)``: ``args(files)`` builds the command line (and any file it
needs, before the snapshot), ``env`` is set for the run, every string of ``expect`` must be
in the error line (what to fix: the file, the key)."""


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(
        label: str, fn: Args, env: dict[str, str] | None = None, expect: tuple[str, ...] = ()
    ) -> None:
        cases.append((label, fn, dict(env or {}), expect))

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
    weights = {  # the one --weights grammar (issue 28): wrong forms, names, scales
        "eval-sr": ["=x", "imdn=", "carn-m=w.pth", "imdn@x1=w.pth", "imdn@x4=w.pth", "a b=c"],
        "attack-sr": ["=x", "edsr=w.pth", "demo-edsr@x4=w.pth"],
        "transfer": ["w.pth", "=x", "bicubic@x1=w.pth"],
        "attack-clf": ["resnet20-cifar10=w.pth", "digits-cnn@x2=w.pth"],
    }
    pre = {"eval-sr": ["--model", "imdn"], "attack-sr": ["--model", "demo-edsr"],
           "transfer": ["--model", "bicubic", "--model", "demo-edsr"], "attack-clf": []}  # fmt: skip
    for cmd, values in weights.items():
        for v in values:
            add(
                f"{cmd} --weights {v}",
                lambda f, c=cmd, v=v: _with_out(c, f) + [*pre[c], "--weights", v],
            )
    for spec in ("apgd-ce@8/255:loss=dlr", "apgd-cee@8/255", "none@8/255"):  # aliases, none
        add(f"attack-clf --attack {spec}", lambda f, a=spec: ["attack-clf", "--attack", a])
    add("defend --attack none --eps", lambda f: ["defend", "--attack", "none", "--eps", "2/255"])
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
    _store_cases(add)
    _output_cases(add)
    _value_cases(add)
    _bound_cases(add)
    _message_cases(add)
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


# ------------------------------------------------- issue 26: stores, outputs, values, bounds

Add = Callable[..., None]
EVAL = ["eval-sr", "--hr-crop", "32"]
ATTACK_SR = ["attack-sr", "--hr-crop", "32", "--steps", "1"]
ATTACK_CLF = ["attack-clf", "--attack", "fgsm", "--limit", "2"]
DEFEND = ["defend", "--attack", "fgsm", "--defense", "median:size=3x3", "--limit", "2"]
SPEC_EVAL = 'experiment = "eval-sr"\n[settings]\nhr_crop = 32\n'


def _side(f: dict[str, Path], name: str) -> Path:
    """A fresh folder beside the inputs for one case's files."""
    d = f["folder"].parent / name
    d.mkdir(exist_ok=True)
    return d


def _read_only(p: Path) -> Path:
    p.chmod(0o555 if p.is_dir() else 0o444)
    return p


def _old_file(f: dict[str, Path], name: str) -> str:
    """An existing chmod 0444 file (an earlier output that must not be overwritten)."""
    p = _side(f, "out") / name
    p.write_text("an earlier output")
    return str(_read_only(p))


def _ro_dir(f: dict[str, Path]) -> Path:
    """An empty chmod 0555 folder (refused for writing even for root: advsr honours the
    mode bits)."""
    return _read_only(_side(f, "ro_out"))


@functools.lru_cache(maxsize=1)
def _store_template() -> bytes:
    """A small finished eval-sr store (the samples at 32 px: the cell of ``EVAL``), as bytes."""
    from advsr.engine.driver import run_cells
    from advsr.engine.store import ResultStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.sqlite"
        with ResultStore(path) as st:
            run_cells([("eval-sr", {"hr_crop": 32})], st, progress=False)
        return path.read_bytes()


STORE_KINDS = [
    "foreign", "binary", "sqlite_header", "truncated", "damaged_page", "bad_cell_json",
    "bad_row_json", "no_rows_table",
]  # fmt: skip


def _store(f: dict[str, Path], kind: str) -> str:
    """A store file of one kind (made lazily: only the cases that use it pay for it)."""
    d = _side(f, "stores")
    p = d / f"{kind}.sqlite"
    if kind == "foreign":  # another program's SQLite database
        sql_run(p, "CREATE TABLE contacts (name TEXT, phone TEXT)",
             "INSERT INTO contacts VALUES ('ada', '123')")  # fmt: skip
    elif kind == "binary":  # not SQLite at all
        p.write_bytes(bytes(range(256)) * 16)
    elif kind == "sqlite_header":  # SQLite's magic, then garbage
        p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    elif kind == "truncated":  # a real store cut in its second page
        p.write_bytes(_store_template()[:6000])
    else:
        p.write_bytes(_store_template())
        if kind == "damaged_page":
            damage_rows_page(p)
        elif kind == "bad_cell_json":
            sql_run(p, "UPDATE cells SET config = '{not json', identity = '{not json'")
        elif kind == "bad_row_json":
            sql_run(p, "UPDATE rows SET metrics = '{\"psnr\": 3'")
        elif kind == "no_rows_table":
            sql_run(p, "DROP TABLE rows")
        elif kind == "read_only":
            _read_only(p)
        elif kind == "ro_folder":  # a sound store in a chmod 0555 folder
            q = _side(f, "ro_store") / "s.sqlite"
            p.rename(q)
            _read_only(q.parent)
            return str(q)
        elif kind == "ro_folder_new":  # no store yet, in a chmod 0555 folder
            p.unlink()
            return str(_read_only(_side(f, "ro_store")) / "new.sqlite")
        elif kind != "good":
            raise AssertionError(kind)
    return str(p)


def _store_cases(add: Add) -> None:
    """Class 1: a store that is not a sound, writable advsr store is refused and never
    written (the snapshot hashes it: its bytes must not change)."""
    commands: dict[str, Callable[[dict[str, Path], str], list[str]]] = {
        "eval-sr": lambda f, s: EVAL + ["--store", s],
        "results": lambda f, s: ["results", "--store", s, "--rows", "image"],
        "run spec": lambda f, s: ["run", _spec(f, SPEC_EVAL), "--store", s],
        "report": lambda f, s: ["report", "--experiment", "eval-sr", "--store", s,
                                "--out", str(f["folder"].parent / "r.html")],
    }  # fmt: skip
    for kind in STORE_KINDS:
        for cmd, make in commands.items():
            add(f"{cmd} --store {kind}", lambda f, k=kind, m=make: m(f, _store(f, k)),
                expect=(f"{kind}.sqlite",))  # fmt: skip
    writers: dict[str, Callable[[dict[str, Path], str], list[str]]] = {
        "eval-sr": commands["eval-sr"],
        "run spec": commands["run spec"],
        "attack-sr": lambda f, s: ATTACK_SR + ["--store", s],
        "attack-clf": lambda f, s: ATTACK_CLF + ["--store", s],
        "leaderboard": lambda f, s: ["leaderboard", "--quick", "--store", s],
    }  # fmt: skip
    for kind, name, cmds in (
        ("read_only", "read_only.sqlite", list(writers)),
        ("ro_folder", "s.sqlite", ["eval-sr", "run spec", "attack-clf"]),
        ("ro_folder_new", "new.sqlite", ["eval-sr", "run spec"]),
    ):
        for cmd in cmds:
            add(f"{cmd} --store {kind}", lambda f, k=kind, m=writers[cmd]: m(f, _store(f, k)),
                expect=(name, "read-only"))  # fmt: skip


def _output_cases(add: Add) -> None:
    """Class 2: an output that cannot be written is refused before any work."""
    reports = {
        "eval-sr": EVAL, "attack-sr": ATTACK_SR, "attack-clf": ATTACK_CLF, "defend": DEFEND,
        "explain": ["explain", "--limit", "2"], "demo": ["demo", "--quick"],
    }  # fmt: skip
    for cmd, base in reports.items():
        add(f"{cmd} --report /proc", lambda f, b=base: b + ["--report", "/proc/x.html"],
            expect=("/proc/x.html",))  # fmt: skip
        add(f"{cmd} --report read-only folder",
            lambda f, b=base: b + ["--report", str(_ro_dir(f) / "x.html")], expect=("x.html",))  # fmt: skip
    add("eval-sr --report read-only file",
        lambda f: EVAL + ["--report", _old_file(f, "r.html")], expect=("r.html", "read-only"))  # fmt: skip
    add("leaderboard --out /proc", lambda f: ["leaderboard", "--quick", "--out", "/proc/lb"],
        expect=("/proc/lb",))  # fmt: skip
    add("leaderboard --out read-only folder",
        lambda f: ["leaderboard", "--quick", "--out", str(_ro_dir(f))], expect=("ro_out",))  # fmt: skip
    add("leaderboard --out below a read-only folder",
        lambda f: ["leaderboard", "--quick", "--out", str(_ro_dir(f) / "lb")], expect=("ro_out",))  # fmt: skip
    add("leaderboard --out a file",
        lambda f: ["leaderboard", "--quick", "--out", str(f["good"])], expect=("good.png",))  # fmt: skip
    add("report --out read-only folder",
        lambda f: ["report", "--experiment", "eval-sr", "--store", _store(f, "good"),
                   "--out", str(_ro_dir(f) / "r.html")], expect=("r.html",))  # fmt: skip
    add("report --out /proc",
        lambda f: ["report", "--experiment", "eval-sr", "--store", _store(f, "good"),
                   "--out", "/proc/r.html"], expect=("/proc/r.html",))  # fmt: skip
    universal = ATTACK_SR + ["--attack", "universal", "--save-perturbation"]
    add("attack-sr --save-perturbation read-only folder",
        lambda f: universal + [str(_ro_dir(f) / "d.safetensors")], expect=("d.safetensors",))  # fmt: skip
    add("attack-sr --save-perturbation /proc",
        lambda f: universal + ["/proc/d.safetensors"], expect=("/proc/d.safetensors",))  # fmt: skip
    for cmd in ("train-sr", "train-classifier", "train-refsr"):
        add(f"{cmd} --out read-only folder",
            lambda f, c=cmd: _out_at(c, f, str(_ro_dir(f) / "m.safetensors")),
            expect=("m.safetensors",))  # fmt: skip
        add(f"{cmd} --out /proc",
            lambda f, c=cmd: _out_at(c, f, "/proc/m.safetensors"), expect=("/proc/m.safetensors",))  # fmt: skip


def _out_at(cmd: str, f: dict[str, Path], out: str) -> list[str]:
    base = _with_out(cmd, f)
    i = base.index("--out")
    return base[:i] + ["--out", out] + base[i + 2 :]


@functools.lru_cache(maxsize=2)
def _state_dict(kind: str) -> dict[str, torch.Tensor]:
    """The real (untrained) state_dict of edsr-baseline x2 or resnet20-cifar10 (the network
    ``--weights`` is loaded into)."""
    if kind == "sr":
        from advsr.models.sr import create_sr_model

        return create_sr_model("edsr-baseline", 2, init_seed=0).state_dict()
    from advsr.models.classifiers import create_classifier

    return create_classifier("resnet20-cifar10", init_seed=0).net.state_dict()  # no wrapper


def _weights(f: dict[str, Path], model: str, kind: str) -> str:
    """A safetensors file with the model's real keys and shapes: ``good``, one value of one
    float tensor NaN or inf, or every float tensor cast to int32."""
    sd = {k: v.clone() for k, v in _state_dict(model).items()}
    floats = [k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1]
    if kind == "nan":  # in the last tensor: every tensor is checked, not the first
        sd[floats[-1]].view(-1)[1] = float("nan")
    elif kind == "inf":  # in one of the middle
        sd[floats[len(floats) // 2]].view(-1)[0] = float("inf")
    elif kind == "int":
        sd = {k: v.to(torch.int32) if v.is_floating_point() else v for k, v in sd.items()}
    elif kind != "good":
        raise AssertionError(kind)
    p = _side(f, "weights") / f"{model}_{kind}.safetensors"
    save_safetensors(p, sd)
    return str(p)


def _perturbation(f: dict[str, Path], kind: str) -> str:
    from advsr.attacks.universal import save_perturbation

    delta = torch.zeros(1, 3, 8, 8)  # the LR size of ATTACK_SR (32 px HR at x4)
    if kind == "nan":
        delta[0, 0, 1, 2] = float("nan")
    elif kind == "inf":
        delta[0, 1, 0, 0] = -float("inf")
    elif kind == "int":
        delta = delta.to(torch.int16)
    p = _side(f, "perturbations") / f"delta_{kind}.safetensors"
    save_perturbation(p, delta, {"model": "bicubic", "scale": 4, "alpha": 8 / 255})
    return str(p)


def _dataset(f: dict[str, Path], kind: str, labelled: bool) -> str:
    """A folder with one good image and, beside it, a broken symlink or a named pipe."""
    from PIL import Image

    d = _side(f, f"data_{kind}_{'labelled' if labelled else 'sr'}")
    size = 32 if labelled else 48
    good = d / ("good_1.png" if labelled else "good.png")
    Image.new("RGB", (size, size), (20, 140, 90)).save(good)
    bad = d / ("x_2.png" if labelled else "x.png")
    if kind == "broken_link":
        bad.symlink_to("missing.png")
    else:
        os.mkfifo(bad)
    return str(d)


def _value_cases(add: Add) -> None:
    """Class 3: values that mean nothing or contradict each other."""
    specs = {
        "eps true": 'experiment = "attack-sr"\n[settings]\neps = true\nhr_crop = 32\nsteps = 1\n',
        "clf eps true": 'experiment = "attack-clf"\n[settings]\neps = true\nlimit = 2\n',
        "scale true": 'experiment = "eval-sr"\n[settings]\nscale = true\nhr_crop = 32\n',
        "steps vs attack options": 'experiment = "attack-sr"\n[settings]\nsteps = 1\n'
                                   'attack = "partial:steps=3"\nhr_crop = 32\n',
    }  # fmt: skip
    for label, text in specs.items():
        add(f"run spec {label}", lambda f, t=text: ["run", _spec(f, t)])
    contradictions = {
        "attack-sr basic@8/255 --eps 4/255": ATTACK_SR + ["--attack", "basic@8/255", "--eps", "4/255"],
        "attack-clf pgd@8/255 --eps 4/255": ["attack-clf", "--attack", "pgd@8/255", "--eps", "4/255", "--limit", "2"],
        "attack-sr basic --mask": ATTACK_SR + ["--attack", "basic", "--mask", "center:0.5"],
        "attack-sr universal --mask": ATTACK_SR + ["--attack", "universal", "--mask", "center:0.5"],
        "attack-sr basic --save-perturbation": ATTACK_SR + ["--attack", "basic", "--save-perturbation", "d.safetensors"],
        "attack-sr --reference clean without --random-start": ATTACK_SR + ["--reference", "clean"],
        "attack-clf fgsm --steps 5": ATTACK_CLF + ["--steps", "5"],
        "defend fgsm --steps 5": DEFEND + ["--steps", "5"],
        "eval-sr bicubic --random-weights": EVAL + ["--model", "bicubic", "--random-weights"],
        "attack-sr --show nosuchimage": ATTACK_SR + ["--show", "nosuchimage"],
        "eval-sr imdn without weights": EVAL + ["--model", "imdn", "--scale", "2"],
        "attack-sr imdn without weights": ATTACK_SR + ["--model", "imdn", "--scale", "2"],
    }  # fmt: skip
    for label, args in contradictions.items():
        add(label, lambda f, a=args: list(a))
    add("eval-sr bicubic --weights FILE",
        lambda f: EVAL + ["--model", "bicubic", "--weights", _weights(f, "sr", "good")])  # fmt: skip
    add("eval-sr --random-weights with --weights",
        lambda f: EVAL + ["--model", "edsr-baseline", "--weights", _weights(f, "sr", "good"), "--random-weights"])  # fmt: skip
    add("attack-clf --random-weights with --weights",
        lambda f: ATTACK_CLF + ["--model", "resnet20-cifar10", "--weights", _weights(f, "clf", "good"), "--random-weights"])  # fmt: skip
    for kind in ("nan", "inf", "int"):
        add(f"eval-sr --weights {kind} values",
            lambda f, k=kind: EVAL + ["--model", "edsr-baseline", "--weights", _weights(f, "sr", k)],
            expect=(f"sr_{kind}.safetensors",))  # fmt: skip
        add(f"attack-clf --weights {kind} values",
            lambda f, k=kind: ATTACK_CLF + ["--model", "resnet20-cifar10", "--weights", _weights(f, "clf", k)],
            expect=(f"clf_{kind}.safetensors",))  # fmt: skip
        add(f"attack-sr --apply-perturbation {kind} values",
            lambda f, k=kind: ATTACK_SR + ["--apply-perturbation", _perturbation(f, k)],
            expect=(f"delta_{kind}.safetensors",))  # fmt: skip
    add("results --where nosuchkey=1",
        lambda f: ["results", "--store", _store(f, "good"), "--where", "nosuchkey=1"],
        expect=("nosuchkey",))  # fmt: skip
    add("report --where nosuchkey=1",
        lambda f: ["report", "--experiment", "eval-sr", "--store", _store(f, "good"),
                   "--where", "nosuchkey=1", "--out", str(f["folder"].parent / "r.html")],
        expect=("nosuchkey",))  # fmt: skip
    folder_cmds: dict[str, tuple[list[str], bool]] = {
        "eval-sr": (EVAL, False), "attack-sr": (ATTACK_SR, False),
        "attack-clf": (ATTACK_CLF, True), "defend": (DEFEND, True),
    }  # fmt: skip
    for kind in ("broken_link", "fifo"):
        for cmd, (base, labelled) in folder_cmds.items():
            add(f"{cmd} --data folder with a {kind}",
                lambda f, b=base, k=kind, lab=labelled: b + ["--data", _dataset(f, k, lab)],
                expect=("x_2.png" if labelled else "x.png",))  # fmt: skip


def _bound_cases(add: Add) -> None:
    """Class 4: upper bounds (and the empty Ray address), refused before any work."""
    add("attack-sr --steps 1000000000",
        lambda f: ["attack-sr", "--hr-crop", "32", "--steps", "1000000000"])  # fmt: skip
    add("attack-clf --steps 100000000",
        lambda f: ["attack-clf", "--attack", "pgd", "--limit", "2", "--steps", "100000000"])  # fmt: skip
    add("defend --steps 100000000",
        lambda f: ["defend", "--attack", "pgd", "--defense", "median:size=3x3", "--limit", "2",
                   "--steps", "100000000"])  # fmt: skip
    add("defend --eot 100000000",
        lambda f: ["defend", "--attack", "pgd", "--steps", "1", "--defense", "kmeans:k=4",
                   "--mode", "adaptive", "--limit", "2", "--eot", "100000000"])  # fmt: skip
    add("defend --draws 100000000",
        lambda f: ["defend", "--attack", "fgsm", "--defense", "kmeans:k=4", "--limit", "2",
                   "--draws", "100000000"])  # fmt: skip
    add("train-sr --steps 1000000000000",
        lambda f: ["train-sr", "--model", "edsr-baseline", "--out", str(f["folder"] / "m.safetensors"),
                   "--patch", "8", "--batch", "2", "--steps", "1000000000000"])  # fmt: skip
    for v in ("0", "100000T"):
        add(f"--max-memory {v}", lambda f, v=v: ["--max-memory", v] + EVAL)
    for v in ("100000", "0", "abc"):
        add(f"ADVSR_THREADS={v}", lambda f: list(EVAL), env={"ADVSR_THREADS": v})
        add(f"--threads {v}", lambda f, v=v: ["--threads", v] + EVAL)
    add("defend median:size=1000x1000",
        lambda f: ["defend", "--attack", "fgsm", "--limit", "2", "--defense", "median:size=1000x1000"])  # fmt: skip
    add("defend kmeans:k=100000",
        lambda f: ["defend", "--attack", "fgsm", "--limit", "2", "--defense", "kmeans:k=100000"])  # fmt: skip
    ray = ["--backend", "ray", "--address="]
    add("eval-sr --backend ray --address ''", lambda f: EVAL + ray, expect=("--address",))
    add("attack-clf --backend ray --address ''", lambda f: ATTACK_CLF + ray, expect=("--address",))
    add("run spec --backend ray --address ''", lambda f: ["run", _spec(f, SPEC_EVAL)] + ray,
        expect=("--address",))  # fmt: skip
    add("leaderboard --backend ray --address ''", lambda f: ["leaderboard", "--quick"] + ray,
        expect=("--address",))  # fmt: skip


def _message_cases(add: Add) -> None:
    """Class 5: the message names what to fix."""
    add("defend quilting:bank=/etc/passwd",
        lambda f: ["defend", "--attack", "fgsm", "--limit", "2", "--defense", "quilting:bank=/etc/passwd"],
        expect=("/etc/passwd",))  # fmt: skip
    bom = "\ufeff"
    add("run spec BOM unknown key", lambda f: ["run", _spec(f, bom + 'experiment = "eval-sr"\nfoo = 1\n')],
        expect=("foo",))  # fmt: skip
    add("run spec BOM unknown setting",
        lambda f: ["run", _spec(f, bom + 'experiment = "eval-sr"\n[settings]\nmodle = "x"\n')],
        expect=("modle",))  # fmt: skip
    add("run spec BOM unknown experiment",
        lambda f: ["run", _spec(f, bom + 'experiment = "eval-rs"\n')], expect=("eval-rs",))  # fmt: skip


CASES = _cases()
BY_LABEL = {c[0]: c for c in CASES}


def test_case_count() -> None:
    assert len(BY_LABEL) == len(CASES), "two cases share a label"
    assert len(CASES) >= 360, len(CASES)


def _snapshot(root: Path) -> set[tuple[str, str]]:
    """Every path under ``root``: folders, links (and their targets), special files, and
    files with their size and, below 1 MB, the SHA-256 of their bytes (a store rewritten in
    place keeps its size)."""
    out = set()
    for p in root.rglob("*"):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out.add((rel, f"link -> {os.readlink(p)}"))
        elif p.is_dir():
            out.add((rel, "folder"))
        elif not p.is_file():
            out.add((rel, "special"))
        else:
            size = p.stat().st_size
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if size < 1 << 20 else ""
            out.add((rel, f"{size} {digest}"))
    return out


def _writable_again(root: Path) -> None:
    """Give back the write bit the read-only cases took (so tmp_path can be removed)."""
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink() and (p.is_dir() or p.is_file()):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("label", list(BY_LABEL))
def test_bad_input(label: str, cli, tmp_path: Path, monkeypatch) -> None:
    _, fn, env, expect = BY_LABEL[label]
    files = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        args = fn(files)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        before = _snapshot(tmp_path)
        res = cli(*[a for a in args if a != ""])
        assert res.code == 2, (label, res.code, res.err, res.out[-300:])
        lines = [ln for ln in res.err.splitlines() if ln.strip() and "advsr: warning:" not in ln]
        assert len(lines) == 1 and lines[0].startswith("advsr: error: "), (label, res.err)
        assert "Traceback" not in res.err + res.out, label
        assert not (tmp_path / PAYLOAD).exists(), f"{label}: a pickled payload ran"
        after = _snapshot(tmp_path)
        assert after == before, (label, after ^ before)  # nothing written (no store, no output)
        for text in expect:  # the line names what to fix
            assert text in lines[0], (label, text, lines[0])
        json.dumps(args)  # the case is plain data
    finally:
        _writable_again(tmp_path)
