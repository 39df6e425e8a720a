"""The command line's one grammar (issue 28): ``--weights`` in three forms everywhere,
the field's attack names as aliases of the same cells, and ``--attack none``."""

from __future__ import annotations

import json

import pytest

from advsr.attacks.base import ATTACKS, aliases_of, create_attack
from advsr.errors import InputError
from advsr.models.sr import weights_dir
from advsr.weight_args import WeightArg, parse_weight_arg, single_model_weights


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("w.pth", WeightArg(None, None, "w.pth")),
        ("imdn=w.pth", WeightArg("imdn", None, "w.pth")),
        ("IMDN@x4=dir/IMDN_x4.pth", WeightArg("imdn", 4, "dir/IMDN_x4.pth")),
        ("carn-m=a=b.pth", WeightArg("carn-m", None, "a=b.pth")),
    ],
)
def test_the_three_forms(text: str, want: WeightArg) -> None:
    assert parse_weight_arg(text) == want


@pytest.mark.parametrize("text", ["", "=w.pth", "imdn=", "imdn@x1=w.pth", "two words=w.pth"])
def test_a_wrong_form_shows_the_grammar(text: str) -> None:
    with pytest.raises(InputError) as e:
        parse_weight_arg(text)
    assert "\n" not in str(e.value)
    assert "NAME=FILE" in str(e.value) or "scale" in str(e.value)


def test_a_path_with_an_equals_sign_is_a_file(tmp_path) -> None:
    f = tmp_path / "lr=1e-4.pth"
    f.write_bytes(b"")
    assert parse_weight_arg(str(f)) == WeightArg(None, None, str(f))


def test_one_model_takes_its_own_name_and_scale_only() -> None:
    assert single_model_weights("imdn=w.pth", model="IMDN", scale=2) == "w.pth"
    with pytest.raises(InputError, match="names carn-m, but the model is imdn"):
        single_model_weights("carn-m=w.pth", model="imdn", scale=2)
    with pytest.raises(InputError, match="is for x4, but this command runs x2"):
        single_model_weights("imdn@x4=w.pth", model="imdn", scale=2)
    with pytest.raises(InputError, match="runs no scale"):
        single_model_weights("digits-cnn@x2=w.pth", model="digits-cnn", scale=None)


def test_every_form_names_the_same_cell(cli) -> None:
    """``FILE``, ``NAME=FILE`` and ``NAME@xS=FILE`` are one cell: the second and third
    runs compute nothing."""
    w = str(weights_dir() / "demo-edsr_x2.safetensors")
    base = ["eval-sr", "--model", "demo-edsr", "--scale", "2", "--hr-crop", "32", "--json"]
    docs = [json.loads(cli(*base, "--weights", form).out) for form in
            (w, f"demo-edsr={w}", f"Demo-EDSR@x2={w}")]  # fmt: skip
    assert [d["computed"] for d in docs] == [8, 0, 0]
    assert len({d["cell_id"] for d in docs}) == 1


def test_transfer_takes_the_named_forms(cli) -> None:
    w = str(weights_dir() / "demo-edsr_x2.safetensors")
    base = ["transfer", "--model", "bicubic", "--model", "demo-edsr", "--scale", "2",
            "--hr-crop", "32", "--steps", "1", "--json"]  # fmt: skip
    ok = cli(*base, "--weights", f"demo-edsr@x2={w}", "--weights", f"demo-edsr@x4={w}")
    assert ok.code == 0, ok.err
    bare = cli(*base, "--weights", w)
    assert bare.code == 2 and "several models" in bare.err


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("apgd-ce@8/255", "apgd@8/255"),
        ("APGD-DLR@8/255", "apgd@8/255:loss=dlr"),
        ("MIFGSM@8/255", "mi-fgsm@8/255"),
        ("PGD@8/255", "pgd@8/255"),
        ("DIFGSM@8/255", "di2-fgsm@8/255"),
        ("apgdt@8/255", "apgd-t@8/255"),
        ("CW", "cw-l2"),
    ],
)
def test_an_alias_is_the_same_attack(alias: str, canonical: str) -> None:
    a, b = create_attack(alias), create_attack(canonical)
    assert a.identity() == b.identity() and a.label == b.label


def test_aliases_are_listed_and_conflicts_refused() -> None:
    assert aliases_of("apgd") == ["apgd-ce (loss=ce)", "apgd-dlr (loss=dlr)"]
    assert "apgd-ce" not in ATTACKS.names()  # an alias is not a second attack
    with pytest.raises(InputError, match="apgd-ce already means loss=ce"):
        create_attack("apgd-ce@8/255:loss=dlr")


def test_an_alias_names_the_same_cell(cli) -> None:
    base = ["attack-clf", "--limit", "4", "--steps", "2", "--json"]
    first = json.loads(cli(*base, "--attack", "mi-fgsm@8/255").out)
    again = json.loads(cli(*base, "--attack", "MIFGSM@8/255").out)
    assert (first["computed"], again["computed"]) == (4, 0)
    listing = json.loads(cli("list", "attacks", "--json").out)
    (apgd,) = [r for r in listing["attacks"] if r["name"] == "apgd"]
    assert apgd["aliases"] == ["apgd-ce (loss=ce)", "apgd-dlr (loss=dlr)"]


def test_defend_attack_none_is_the_clean_row(cli) -> None:
    res = cli("defend", "--attack", "none", "--defense", "median:size=3x3", "--limit", "4",
              "--json")  # fmt: skip
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["computed"] == 8  # two defenses x four images, clean only
    table = doc["tables"]["non-adaptive"]
    assert table["columns"] == ["clean"]
    assert [r["defense"] for r in table["rows"]] == ["none", "median:size=3x3"]
