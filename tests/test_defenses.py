"""Defense contract tests generated from the registry, BPDA/EOT, specs and ``advsr defend``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from advsr.defenses import (
    BPDA,
    DEFENSES,
    EOT,
    DefendedClassifier,
    Defense,
    Interpolation,
    RandomResizePad,
    adaptive,
    bpda,
    canonical_spec,
    create_defense,
    eot,
    parse_spec,
)
from advsr.defenses.resizing import random_resize_pad
from advsr.errors import InputError, UnknownNameError

# Settings that keep each registered defense cheap on a 16x16 test image.
CHEAP: dict[str, str] = {
    "sr": "sr:scale=2",
    "tvm": "tvm:p=0.5",
    "kmeans": "kmeans:k=4",
    "pixel-deflection": "pixel-deflection:deflections=30,window=4",
    "quilting": "quilting:bank_data=digits-train,bank_images=20,k=3",
    "quilting-tvm": "quilting-tvm:bank_data=digits-train,bank_images=20,k=3",
}


def _spec(name: str) -> str:
    return CHEAP.get(name, name)


def _x(n: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", DEFENSES.names())
def test_defense_contract(name: str) -> None:
    d = create_defense(_spec(name))
    assert isinstance(d, Defense)
    x = _x()
    keep = x.clone()
    out = d(x, torch.Generator().manual_seed(1))
    assert torch.equal(x, keep)  # input unchanged
    assert out.shape == (2 * d.views, 3, *d.output_size(16, 16))
    assert out.min() >= 0 and out.max() <= 1
    entry = DEFENSES.get(name)  # the listing's flags are the built defense's
    assert (entry.differentiable, entry.stochastic) == (d.differentiable, d.stochastic)
    again = d(x, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # determinism given a generator
    if d.stochastic:
        other = d(x, torch.Generator().manual_seed(2))
        assert not torch.equal(out, other), "a stochastic defense ignored its generator"
    # the adaptive view gives finite, non-zero gradients w.r.t. the input
    xr = x.clone().requires_grad_(True)
    y = bpda(d)(xr, torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad((y * torch.linspace(0, 1, y.numel()).view_as(y)).sum(), xr)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize(
    "name", [n for n in DEFENSES.names() if create_defense(_spec(n)).differentiable]
)
def test_differentiable_defenses_pass_gradcheck(name: str) -> None:
    d = copy.deepcopy(create_defense(_spec(name))).double()
    x = (0.1 + 0.8 * _x(1, 12, seed=5).double()).requires_grad_(True)

    def f(t: torch.Tensor) -> torch.Tensor:
        return d(t, torch.Generator().manual_seed(4))  # the same draw at every call

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-4, fast_mode=True)


def test_bpda_forward_is_the_defense_backward_is_the_surrogate() -> None:
    class Round(Defense):
        differentiable = False

        def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
            return (x * 4).round() / 4

        def surrogate(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x  # a deliberately different slope to see which gradient flows

    d = Round()
    x = _x(1, 4).requires_grad_(True)
    y = bpda(d)(x)
    assert torch.equal(y, d(x.detach()))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(g, torch.full_like(g, 2.0))
    plain = Interpolation("bilinear", 2, "down-up")
    assert bpda(plain) is plain  # differentiable: nothing to approximate


def test_eot_averages_probabilities_over_draws() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
    d = RandomResizePad(ratio=1.25)
    x = _x(2, 8)
    net(torch.zeros(1, 3, 10, 10))  # materialise the lazy layer for 10x10 inputs
    wrapped = eot(d, 5)
    assert isinstance(wrapped, EOT) and eot(Interpolation(), 5).__class__ is Interpolation
    clf = DefendedClassifier(net, wrapped, seed=3)
    out = clf(x)
    # one draw of the classifier's generator per call; image j draws from seed + 7919 j
    seed = int(torch.randint(0, 2**40, (1,), generator=torch.Generator().manual_seed(3)))
    p = torch.stack(
        [
            torch.softmax(
                net(
                    d(
                        x[j : j + 1].repeat(5, 1, 1, 1),
                        torch.Generator().manual_seed(seed + 7919 * j),
                    )
                ),
                1,
            ).mean(0)
            for j in range(2)
        ]
    )
    assert torch.allclose(out.exp(), p, atol=1e-6)
    assert isinstance(adaptive(d, 5), EOT)
    # a random, non-differentiable defense gets BPDA inside EOT (not BPDA alone)
    tvm = create_defense("tvm:p=0.5")
    wrapped_tvm = adaptive(tvm, 5)
    assert isinstance(wrapped_tvm, EOT) and isinstance(wrapped_tvm.defense, BPDA)
    assert wrapped_tvm(x, torch.Generator().manual_seed(0)).shape == (10, 3, 8, 8)


def test_random_resize_pad_equals_per_image_resize_and_pad() -> None:
    x = _x(3, 32)
    sizes = torch.tensor([[33, 33], [34, 34], [32, 32]])
    offsets = torch.tensor([[0, 1], [1, 0], [3, 2]])
    out = random_resize_pad(x, sizes, offsets, (35, 35))
    for i in range(3):
        ref = torch.zeros(1, 3, 35, 35)
        (h, w), (t, left) = sizes[i].tolist(), offsets[i].tolist()
        ref[..., t : t + h, left : left + w] = F.interpolate(x[i : i + 1], (h, w), mode="nearest")
        assert torch.equal(out[i : i + 1], ref)
    y = RandomResizePad()(torch.rand(4, 3, 299, 299), torch.Generator().manual_seed(0))
    assert y.shape == (4, 3, 331, 331)


def test_interpolation_against_torch_and_shapes() -> None:
    x = _x(2, 12)
    up = Interpolation("bicubic", 2, "up")(x)
    ref = F.interpolate(x, size=(24, 24), mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(up, ref)
    for direction in ("up-down", "down-up"):
        for mode in ("nearest", "bilinear", "bicubic"):
            assert Interpolation(mode, 2, direction)(x).shape == x.shape


def test_specs_parse_and_fail_clearly() -> None:
    assert parse_spec("median:size=3x3") == ("median", {"size": (3, 3)})
    assert parse_spec("x:a=2/255,b=true,c=none,d=db1") == (
        "x",
        {"a": 2 / 255, "b": True, "c": None, "d": "db1"},
    )
    assert canonical_spec("interpolation:mode=nearest,factor=2") == (
        "interpolation:factor=2,mode=nearest"
    )
    with pytest.raises(UnknownNameError, match="did you mean"):
        create_defense("medain")
    with pytest.raises(InputError, match=r"no setting 'sise'.*did you mean 'size'"):
        create_defense("median:sise=3")
    with pytest.raises(InputError, match="key=value"):
        create_defense("median:3x3")
    with pytest.raises(InputError):
        create_defense("resize-pad:ratio=0.5")


def test_every_defense_has_a_settings_model_whose_defaults_are_listed(cli) -> None:
    from advsr.settings import Settings, validate

    rows = json.loads(cli("list", "defenses", "--json").out)["defenses"]
    assert [r["name"] for r in rows] == DEFENSES.names()
    for row in rows:
        entry = DEFENSES.get(row["name"])
        model = entry.settings
        assert issubclass(model, Settings) and model.model_config["extra"] == "forbid"
        defaults = {k: f.get_default() for k, f in model.model_fields.items()}
        # the listing shows the model's defaults, in its order (tuples as JSON lists)
        assert list(row["settings"]) == list(defaults), row["name"]
        assert row["settings"] == json.loads(json.dumps(defaults)), row["name"]
        assert row["domain"] == list(entry.domains) and set(entry.domains) <= {"classifier", "sr"}
        assert all(f.description for f in model.model_fields.values()), row["name"]
        with pytest.raises(InputError, match="nosuch"):  # unknown settings are refused
            validate(model, {"nosuch": 1})
        model()  # the defaults are valid
    assert {r["name"]: r["settings"] for r in rows}["tvm"] == {
        "p": 0.3, "lam": 0.5, "norm": 2, "steps": 20, "per_channel_mask": True,
    }  # fmt: skip


def test_sr_domain_entries_are_the_sr_side_defenses() -> None:
    from advsr.defenses import apply_sr_defense, defense_names, get_defense
    from advsr.models.sr import create_sr_model

    # the names of the former SR_DEFENSES registry, now entries of the one registry
    assert defense_names("sr") == ["resize-by-one", "self-ensemble"]
    assert defense_names("classifier") == DEFENSES.names()
    for name in defense_names("sr"):
        assert DEFENSES.get(name).build_sr is not None
    for bad, hint in (
        ("sr", ""),
        ("median", ""),
        ("resize_by_one", " (did you mean 'resize-by-one'?)"),
    ):
        with pytest.raises(UnknownNameError) as err:
            get_defense(bad, "sr")
        assert str(err.value) == (
            f"unknown SR defense {bad!r}{hint}; known: resize-by-one, self-ensemble"
        )
    model = create_sr_model("bicubic", 2).train()
    assert apply_sr_defense("Self-Ensemble", model).training  # mode copied from the model
    with pytest.raises(UnknownNameError, match="unknown SR defense 'jpeg'"):
        apply_sr_defense("jpeg", model)


def test_spec_values_none_and_bools_reach_the_settings_as_before() -> None:
    assert create_defense("bit-depth").bits == 4  # neither bits nor reduce: 4 bits
    assert create_defense("bit-depth:bits=none").bits == 4
    d = create_defense("bit-depth:reduce=3")
    assert (d.bits, d.reduce) == (None, 3)
    assert create_defense("wavelet:sigma=none").sigma is None
    sr = create_defense("sr:model=demo-edsr,scale=2,denoise=none")
    assert sr.denoise is None and create_defense("sr").denoise is not None
    assert create_defense("median:size=2").kernel == (2, 2)
    assert create_defense("tvm:per_channel_mask=false").per_channel_mask is False
    for bad in ("tvm:steps=true", "jpeg:quality=false", "median:size=true"):
        with pytest.raises(InputError):
            create_defense(bad)
    with pytest.raises(InputError, match=r"^invalid tvm setting steps: .*greater than or equal"):
        create_defense("tvm:steps=0")
    with pytest.raises(InputError, match="jpeg setting quality"):
        create_defense("jpeg:quality=75.0")  # an integer setting takes no float


def test_defend_cli(cli, tmp_path: Path) -> None:
    args = [
        "defend",
        "--limit",
        "24",
        "--attack",
        "fgsm@8/255",
        "--attack",
        "fgsm@24/255",
        "--attack",
        "deepfool",
        "--defense",
        "median:size=3x3",
        "--defense",
        "resize-pad",
        "--mode",
        "non-adaptive",
        "--mode",
        "adaptive",
        "--eot",
        "2",
        "--store",
        str(tmp_path / "s.sqlite"),
        "--report",
        str(tmp_path / "r.html"),
        "--json",
    ]
    res = cli(*args)
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["images"] == 24
    non, ada = (
        {r["defense"]: r for r in doc["tables"][m]["rows"]} for m in ("non-adaptive", "adaptive")
    )
    assert non["none"]["clean"] == 1.0  # only correctly classified images are used
    assert non["none"]["deepfool"] == 0.0  # DeepFool fools every one of them undefended
    assert non["median:size=3x3"]["deepfool"] > 0.5  # the defense undoes minimal attacks
    assert ada["none"] == non["none"]  # no defense: adaptive is the same attack
    assert set(doc["curves"]["non-adaptive"]) == {"fgsm", "deepfool"}
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "adaptive" in html
    again = cli(*args)  # everything is in the store: same numbers, nothing recomputed
    assert json.loads(again.out)["tables"] == doc["tables"]
    for bad in (
        ["--defense", "nosuch"],
        ["--defense", "median:size=0"],
        ["--defense", "bit-depth:bits=0"],
        ["--defense", "tvm:p=1.5"],
        ["--defense", "kmeans:k=1"],
        ["--defense", "jpeg:quality=101"],
        ["--mode", "sideways"],
        ["--attack", "fgsm@-1"],
        ["--attack", "deepfool@2/255"],
        ["--eot", "0"],
    ):
        r = cli("defend", "--limit", "4", "--store", str(tmp_path / "s.sqlite"), *bad)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (bad, r.err)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in DEFENSES.names()
        if len(DEFENSES.get(n).classes) == 1 and not DEFENSES.get(n).roles  # no file needed
    ],
)
def test_a_defense_class_and_its_settings_model_have_the_same_defaults(name: str) -> None:
    """The Python class built with no arguments is the spec's defense at its defaults: the
    settings model does not drift from the constructor."""
    entry = DEFENSES.get(name)
    (cls,) = entry.classes
    try:
        bare = cls()
    except (TypeError, InputError):  # bit-depth: exactly one of bits= and reduce=
        pytest.skip(f"{cls.__name__} has required constructor arguments")
    assert repr(entry.build(entry.settings())) == repr(bare)
