"""Files named anywhere in a cell (defense specs, attack settings, trigger specs, data) are
identified by their bytes: moving, renaming or copying them recomputes nothing, and tables
show a short label (``name #abcdef``), never a path."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch

from advsr.defenses.quilting import PatchBank
from advsr.defenses.registry import defense_files, defense_identity, defense_label
from advsr.files import file_sha256, identity_label, spec_identity, spec_label
from advsr.io import write_image
from advsr.models.sr import weights_dir


def _walk(tmp_path: Path, src: Path) -> Iterator[Path]:
    """The file at its first place, then moved to another folder, renamed, and copied (the
    copy's bytes only: the renamed file is left where it is); each step happens when the
    previous path has been used."""
    a = tmp_path / "a" / src.name
    a.parent.mkdir()
    shutil.copy(src, a)
    yield a
    b = tmp_path / "b" / src.name
    b.parent.mkdir()
    shutil.move(a, b)
    yield b
    c = b.with_name(f"renamed{src.suffix}")
    shutil.move(b, c)
    yield c
    d = tmp_path / f"copy{src.suffix}"
    shutil.copy(c, d)
    yield d


def _no_paths(text: str, *roots: Path) -> None:
    for root in roots:
        assert str(root) not in text, text


def _computed(doc: dict) -> int:
    return int(doc["computed"])


def test_defense_weights_moved_renamed_copied_recompute_nothing(cli, tmp_path: Path) -> None:
    src = weights_dir() / "demo-edsr_x2.safetensors"
    computed, out = [], ""
    for path in _walk(tmp_path, src):
        spec = f"sr:model=demo-edsr,scale=2,weights={path}"
        r = cli("defend", "--defense", spec, "--limit", "2", "--probes", "off", "--json")
        assert r.code == 0, r.err
        doc, out = json.loads(r.out), r.out
        computed.append(_computed(doc))
    assert computed[0] > 0 and computed[1:] == [0, 0, 0], computed
    labels = [row["defense"] for row in doc["tables"]["non-adaptive"]["rows"]]
    want = f"sr:model=demo-edsr,scale=2,weights={src.name} #{file_sha256(src)[:6]}"
    assert labels[1] == want, labels
    _no_paths(out.split('"cells"')[0], tmp_path)
    # other bytes under the same path are another cell
    copy = tmp_path / "copy.safetensors"
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1  # the last byte of the tensor data
    copy.write_bytes(bytes(data))
    r = cli("defend", "--defense", f"sr:model=demo-edsr,scale=2,weights={copy}", "--limit", "2",
            "--probes", "off", "--json")  # fmt: skip
    assert r.code == 0 and _computed(json.loads(r.out)) > 0, r.err


def test_quilting_bank_file_and_bank_folder_by_content(cli, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    bank = PatchBank.from_images(torch.rand(4, 3, 16, 16, generator=g), 5, generator=g)
    src = tmp_path / "bank.safetensors"
    bank.save(src)
    computed = []
    for path in _walk(tmp_path, src):
        r = cli("defend", "--defense", f"quilting:bank={path},k=2", "--limit", "2",
                "--probes", "off", "--json")  # fmt: skip
        assert r.code == 0, r.err
        computed.append(_computed(json.loads(r.out)))
        _no_paths(r.out.split('"cells"')[0], tmp_path)
    assert computed[0] > 0 and computed[1:] == [0, 0, 0], computed
    # bank_data names a folder: identified by its files, not by its path
    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"{i:02d}_{i}.png", torch.rand(1, 3, 8, 8, generator=g))
    specs = [f"quilting:bank_data={folder},bank_images=2,k=2"]
    moved = tmp_path / "moved-clean"
    shutil.copytree(folder, moved)
    specs.append(f"quilting:bank_data={moved},bank_images=2,k=2")
    assert defense_identity(specs[0]) == defense_identity(specs[1])
    assert defense_label(specs[1]).startswith("quilting:bank_data=moved-clean #")
    assert defense_files(specs[1])[0]["files"] == 2


def test_partial_attack_mask_file_by_content(cli, tmp_path: Path) -> None:
    mask = torch.zeros(1, 3, 16, 16)
    mask[..., 4:12, 4:12] = 1
    src = tmp_path / "mask.png"
    write_image(src, mask)
    computed = []
    for path in _walk(tmp_path, src):
        r = cli("attack-sr", "--model", "bicubic", "--scale", "2", "--hr-crop", "32",
                "--attack", "partial", "--mask", str(path), "--steps", "2", "--json")  # fmt: skip
        assert r.code == 0, r.err
        computed.append(_computed(json.loads(r.out)))
    assert computed[0] > 0 and computed[1:] == [0, 0, 0], computed


def test_data_folder_moved_renamed_copied(cli, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    folder = tmp_path / "a" / "imgs"
    folder.mkdir(parents=True)
    for i in range(2):
        write_image(folder / f"im{i}.png", torch.rand(1, 3, 24, 24, generator=g))
    places = [folder, tmp_path / "b" / "imgs", tmp_path / "b" / "renamed"]
    computed = []
    for i, path in enumerate(places):
        if i:
            path.parent.mkdir(exist_ok=True)
            shutil.move(places[i - 1], path)
        r = cli("eval-sr", "--model", "bicubic", "--scale", "2", "--data", str(path), "--json")
        assert r.code == 0, r.err
        computed.append(_computed(json.loads(r.out)))
    shutil.copytree(places[-1], tmp_path / "copy")
    r = cli("eval-sr", "--model", "bicubic", "--scale", "2", "--data", str(tmp_path / "copy"),
            "--json")  # fmt: skip
    computed.append(_computed(json.loads(r.out)))
    assert computed[0] > 0 and computed[1:] == [0, 0, 0], computed


def test_trigger_image_file_by_content(cli, tmp_path: Path) -> None:
    from advsr.engine.driver import run_one
    from advsr.engine.store import ResultStore

    model = tmp_path / "m.safetensors"
    r = cli("train-refsr", "--out", str(model), "--tiny", "--hr-size", "32", "--batch", "2",
            "--steps", "1", "--rate", "0.5", "--trigger", "blend")  # fmt: skip
    assert r.code == 0, r.err
    key = tmp_path / "key.png"
    write_image(key, torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)))
    store = ResultStore(tmp_path / "bd.sqlite")
    computed, labels = [], []
    for path in _walk(tmp_path, key):
        settings = {"model_file": str(model), "trigger": f"blend:key={path}", "figures": 0}
        run = run_one("backdoor", settings, store, progress=False)
        computed.append(run.computed)
        labels.append(run.info["trigger"])
    assert computed[0] > 0 and computed[1:] == [0, 0, 0], computed
    assert set(labels) == {f"blend:key=key.png #{file_sha256(tmp_path / 'copy.png')[:6]}"}


def test_spec_helpers_keep_specs_without_files() -> None:
    assert spec_identity("median:size=3x3", {}) == "median:size=3x3"
    assert spec_label("quilting:bank_data=samples,k=2", {"bank_data": "data"}) == (
        "quilting:bank_data=samples,k=2"
    )  # a registered dataset name stays a name
    assert identity_label("/x/IMDN_x2.pth", "ab" * 32) == "IMDN_x2.pth #ababab"
    assert identity_label("imdn", "imdn") == "imdn"
