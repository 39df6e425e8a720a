"""SR zoo: contract tests generated from the registry, official key layouts, loading safety."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from advsr.errors import InputError, ModelLoadError, UnknownNameError
from advsr.io import load_state_dict, save_safetensors
from advsr.models.sr import SR_MODELS, create_sr_model, list_sr_models, load_weights
from advsr.models.sr.rrdb import RRDBNet
from tests.conftest import SHARED
from tests.references import official_keys as ok

CASES = [(n, s) for n in SR_MODELS.names() for s in SR_MODELS.get(n).scales if s <= 4]


def _tiny(name: str, scale: int) -> torch.nn.Module:
    entry = SR_MODELS.get(name)
    assert entry.tiny or not entry.needs_weights, f"register a tiny configuration for {name!r}"
    return create_sr_model(name, scale, arch=entry.tiny, bundled=False)


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_zoo_contract(name: str, scale: int) -> None:
    torch.manual_seed(0)
    model = _tiny(name, scale)
    assert not model.training
    x = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = model(x)
    assert y.shape == (2, 3, 7 * scale, 9 * scale)  # odd sizes work
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1
    assert not model.training  # forward does not change the mode
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g.abs().sum() > 0  # gradients reach the input
    assert torch.allclose(model(x[:1]), y[:1], atol=1e-5)  # batch-independent


@pytest.mark.parametrize(
    ("name", "scale", "expected"),
    [
        ("edsr", 4, ok.edsr_keys(32, 256, 4)),
        ("edsr", 3, ok.edsr_keys(32, 256, 3)),
        ("edsr-baseline", 2, ok.edsr_keys(16, 64, 2)),
        ("rcan", 4, ok.rcan_keys(10, 20, 64, 16, 4)),
        ("rrdb", 4, ok.rrdb_keys_new(64, 23, 32)),
        ("carn", 2, ok.carn_keys()),
        ("carn-m", 4, ok.carn_m_keys()),
        ("imdn", 4, ok.imdn_keys(64, 6, 4)),
        ("imdn", 2, ok.imdn_keys(64, 6, 2)),
        ("srresnet", 4, ok.msrresnet_keys(64, 16, 4)),
        ("srresnet", 3, ok.msrresnet_keys(64, 16, 3)),
    ],
)
def test_state_dict_equals_official_layout(name: str, scale: int, expected: dict) -> None:
    entry = SR_MODELS.get(name)
    with torch.device("meta"):
        model = entry.arch(scale, **entry.options)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == {k: tuple(v) for k, v in expected.items()}


def test_parameter_counts_match_published() -> None:
    counts = {r["name"]: r["params"] for r in list_sr_models()}
    assert counts["carn-m"] == 414_811  # the shared official checkpoint
    assert round(counts["edsr"] / 1e6, 1) == 43.1
    assert round(counts["edsr-baseline"] / 1e6, 1) == 1.5
    assert round(counts["rcan"] / 1e6, 1) == 15.6
    assert round(counts["rrdb"] / 1e6, 1) == 16.7
    assert counts["imdn"] == 715_176
    assert counts["bicubic"] == 0
    for name, n in counts.items():
        assert n == ok.PUBLISHED_PARAMS.get(name, n), name


def _to_old_rrdb(sd: dict[str, torch.Tensor], nb: int) -> dict[str, torch.Tensor]:
    """New ESRGAN names -> the old sequential names, via the reference key lists' order."""
    new = list(ok.rrdb_keys_new(8, nb, 4))
    old = list(ok.rrdb_keys_old(8, nb, 4))
    assert len(new) == len(old)
    return {o: sd[n] for n, o in zip(new, old, strict=True)}


def test_rrdb_old_and_basicsr_key_styles_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = RRDBNet(4, nf=8, nb=2, gc=4).eval()
    sd = ref.state_dict()
    x = torch.rand(1, 3, 6, 5)
    save_safetensors(tmp_path / "old.safetensors", _to_old_rrdb(sd, 2))
    m = create_sr_model("esrgan", 4, tmp_path / "old.safetensors", arch={"nf": 8, "nb": 2, "gc": 4})
    assert torch.equal(m(x), ref(x))
    basicsr = {}
    for k, v in sd.items():
        k = k.replace("RRDB_trunk.", "body.").replace("trunk_conv", "conv_body")
        k = k.replace("upconv", "conv_up").replace("HRconv", "conv_hr")
        for i in (1, 2, 3):
            k = k.replace(f"RDB{i}", f"rdb{i}")
        basicsr[k] = v
    torch.save({"params_ema": basicsr}, tmp_path / "basicsr.pth")
    m2 = create_sr_model("rrdb", 4, tmp_path / "basicsr.pth", arch={"nf": 8, "nb": 2, "gc": 4})
    assert torch.equal(m2(x), ref(x))


def test_loading_unwraps_and_reports_mismatches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_sr_model("imdn", 2, arch={"nf": 16, "num_modules": 1})
    sd = model.state_dict()
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
        tmp_path / "wrapped.pth",
    )
    again = create_sr_model("imdn", 2, tmp_path / "wrapped.pth", arch={"nf": 16, "num_modules": 1})
    x = torch.rand(1, 3, 5, 5)
    assert torch.equal(again(x), model(x))
    bad = dict(sd)
    bad["fea_conv.weight"] = torch.zeros(16, 3, 5, 5)
    bad.pop("LR_conv.bias")
    bad["extra.weight"] = torch.zeros(1)
    save_safetensors(tmp_path / "bad.safetensors", bad)
    with pytest.raises(ModelLoadError) as err:
        load_weights(model, tmp_path / "bad.safetensors", name="imdn")
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing (LR_conv.bias)" in msg and "1 unexpected (extra.weight)" in msg
    assert "fea_conv.weight file 16x3x5x5 vs model 16x3x3x3" in msg


def test_bad_weight_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such weight file"):
        load_state_dict(tmp_path / "none.pth")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="is not a weight file \\(unknown type"):
        load_state_dict(tmp_path / "w.txt")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_state_dict(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="corrupt safetensors"):
        load_state_dict(tmp_path / "junk.safetensors")
    torch.save({"epoch": 1}, tmp_path / "notensors.pth")
    with pytest.raises(ModelLoadError, match="no tensors"):
        load_state_dict(tmp_path / "notensors.pth")


class _Evil(torch.nn.Module):
    """A module class that must never be imported while loading."""


def test_pickled_model_is_refused_without_unpickling(tmp_path: Path) -> None:
    torch.save(_Evil(), tmp_path / "evil.pth")
    with pytest.raises(ModelLoadError, match=r"refused .*test_models_sr\._Evil"):
        load_state_dict(tmp_path / "evil.pth")


@pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="../shared/data is absent")
def test_shared_full_pickle_is_refused_and_nothing_imported() -> None:
    before = set(sys.modules)
    path = SHARED / "weights" / "vdsr" / "full_pickle_DO_NOT_UNPICKLE.pth"
    with pytest.raises(ModelLoadError, match=r"refused .*vdsr\.Net"):
        create_sr_model("vdsr", 2, path)
    assert "vdsr" not in set(sys.modules) - before


def test_zoo_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'edsr'"):
        create_sr_model("edrs", 2)
    with pytest.raises(InputError, match="no architecture option 'n_feat'"):
        create_sr_model("edsr", 2, arch={"n_feat": 3})
    with pytest.raises(InputError, match="does not support scale 3"):
        create_sr_model("rrdb", 3)
    with pytest.raises(ModelLoadError, match="no such weight file"):
        create_sr_model("edsr-baseline", 2, tmp_path / "missing.safetensors")


def test_cli_reports_bad_weights_in_one_line(cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    sd = create_sr_model("carn-m", 2, arch={"n_feats": 8}).state_dict()
    sd["exit.weight"] = torch.zeros(3, 8, 5, 5)  # tampered shape
    save_safetensors(tmp_path / "tampered.safetensors", sd)
    torch.save(_Evil(), tmp_path / "evil.pth")
    for path in ("tampered.safetensors", "evil.pth"):
        res = cli(
            "eval-sr", "--model", "carn-m", "--weights", str(tmp_path / path), "--hr-crop", "32"
        )
        assert res.code == 2 and res.err.count("\n") == 1 and "Traceback" not in res.err
    res = cli("convert", str(tmp_path / "evil.pth"), str(tmp_path / "out.safetensors"))
    assert res.code == 2 and "refused" in res.err
    assert not (tmp_path / "out.safetensors").exists()
    res = cli("models", "--json")
    assert {m["name"] for m in json.loads(res.out)["sr_models"]} >= {"edsr", "rcan", "vdsr"}
