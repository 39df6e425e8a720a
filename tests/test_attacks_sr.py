"""SR attacks: budget, range, purity, masks, determinism, mode, and real effect."""

from __future__ import annotations

import json

import pytest
import torch

from advsr.attacks import basic_attack, parse_budget, partial_attack, run_steps, sr_attack_metrics
from advsr.attacks._loop import project, random_start
from advsr.attacks.objectives import sr_deviation, sr_reference
from advsr.attacks.sr import make_mask
from advsr.errors import InputError, ShapeError
from advsr.models.sr import SR_MODELS, create_sr_model
from advsr.types import Budget

EPS = 8 / 255


def _x(seed: int = 0, n: int = 2, h: int = 12, w: int = 10) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", [n for n in SR_MODELS.names() if 2 in SR_MODELS.get(n).scales])
def test_basic_attack_properties_on_every_zoo_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_sr_model(name, 2, arch=SR_MODELS.get(name).tiny, bundled=False)
    model.train()  # the attack must restore whatever mode it found
    x0 = _x()
    keep = x0.clone()
    res = basic_attack(model, x0, eps=EPS, steps=5)
    assert model.training
    assert torch.equal(x0, keep)
    assert (res.x_adv - x0).abs().max() <= EPS + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.diagnostics["losses"].shape == (5, 2)
    assert res.success.all()  # the deviation from the reference grew
    assert res.sr_adv.shape == res.sr_clean.shape == (2, 3, 24, 20)


def test_deterministic_with_a_seed_and_random_start() -> None:
    model = create_sr_model("demo-edsr", 2)
    x0 = _x(1)
    runs = [
        basic_attack(
            model,
            x0,
            eps=EPS,
            steps=4,
            reference="clean",
            random_start=True,
            generator=torch.Generator().manual_seed(7),
        ).x_adv
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    other = basic_attack(
        model,
        x0,
        eps=EPS,
        steps=4,
        reference="clean",
        random_start=True,
        generator=torch.Generator().manual_seed(8),
    ).x_adv
    assert not torch.equal(runs[0], other)


def test_clean_reference_without_random_start_is_refused() -> None:
    model = create_sr_model("bicubic", 2)
    with pytest.raises(InputError, match="zero gradient"):
        basic_attack(model, _x(), reference="clean")
    # and the reason is real: the gradient at X0 is exactly zero
    x0 = _x().requires_grad_(True)
    ref = sr_reference(model, x0.detach(), "clean")
    (g,) = torch.autograd.grad(sr_deviation(model, ref)(x0).sum(), x0)
    assert g.abs().max() == 0


def test_attack_beats_random_sign_noise_by_a_clear_margin() -> None:
    """The attack, with a smaller LR perturbation than full-budget random signs, moves the SR
    output much further (demo-carn-m x4: about 1.35x the deviation, i.e. ~2.6 dB lower SR
    PSNR; the official CARN-M shows 5.8 dB on Set5)."""
    from advsr.data import open_dataset

    model = create_sr_model("demo-carn-m", 4)
    pair = open_dataset("samples", 4, hr_crop=128)[1]
    res = basic_attack(model, pair.lr, eps=EPS, steps=20)
    signs = torch.randint(0, 2, pair.lr.shape, generator=torch.Generator().manual_seed(0))
    noise = (pair.lr + EPS * (2 * signs - 1)).clamp(0, 1)
    with torch.no_grad():
        dev_attack = (res.sr_adv - res.sr_clean).norm()
        dev_noise = (model(noise) - res.sr_clean).norm()
    assert (res.x_adv - pair.lr).norm() <= (noise - pair.lr).norm()
    assert dev_attack > 1.25 * dev_noise, (float(dev_attack), float(dev_noise))
    m = sr_attack_metrics(pair.lr, res, hr=pair.hr)
    assert float(m["sr_psnr"]) < float(m["lr_psnr"]) - 1  # SR degrades more than LR


def test_partial_attack_is_exactly_zero_outside_the_mask() -> None:
    model = create_sr_model("demo-carn-m", 2)
    x0 = _x(2, n=1, h=16, w=16)
    mask = make_mask("rect:4,4,6,6", 16, 16)
    res = partial_attack(model, x0, "rect:4,4,6,6", eps=EPS, steps=5)
    delta = res.x_adv - x0
    assert delta[..., mask[0, 0] == 0].abs().max() == 0
    assert delta[..., mask[0, 0] == 1].abs().max() > 0
    assert res.outputs["mask_hr"].shape == (1, 1, 32, 32)
    m = sr_attack_metrics(x0, res)
    assert {"sr_psnr_inside", "sr_psnr_outside"} <= set(m)
    with pytest.raises(InputError, match="does not fit"):
        partial_attack(model, x0, "rect:0,0,20,20")


def test_engine_l2_and_projection() -> None:
    x0 = _x(3)
    b = Budget("l2", 0.5, steps=4)
    res = run_steps(
        lambda x: (x - 0.5).flatten(1).norm(dim=1),
        x0,
        b,
        start=random_start(x0, b, torch.Generator().manual_seed(0)),
    )
    assert ((res.x - x0).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    far = x0 + 1.0
    assert (project(far, x0, Budget("linf", 0.1)) - x0).abs().max() <= 0.1 + 1e-7
    with pytest.raises(ShapeError, match="one value per image"):
        run_steps(lambda x: x.sum(), x0, Budget("linf", 0.1, 1))


def test_bad_inputs() -> None:
    model = create_sr_model("bicubic", 2)
    with pytest.raises(InputError, match="budget eps of basic"):
        basic_attack(model, _x(), eps=1.5)
    with pytest.raises(InputError, match="budget eps of basic"):
        basic_attack(model, _x(), eps=-0.1)
    with pytest.raises(InputError, match="steps"):
        basic_attack(model, _x(), steps=0)
    with pytest.raises(InputError, match="needs HR"):
        basic_attack(model, _x(), reference="ground-truth")
    with pytest.raises(InputError, match="reference"):
        basic_attack(model, _x(), reference="truth")
    assert parse_budget("8/255") == pytest.approx(8 / 255)
    for bad in ("2", "-1/255", "a/b", "1/0", "nan", "inf"):
        with pytest.raises(InputError):
            parse_budget(bad)
    with pytest.raises(InputError):
        make_mask("center:0", 8, 8)


def test_attack_sr_cli(cli, tmp_path) -> None:
    res = cli(
        "attack-sr",
        "--model",
        "demo-edsr",
        "--scale",
        "2",
        "--hr-crop",
        "48",
        "--alpha",
        "2/255",
        "--alpha",
        "8/255",
        "--steps",
        "3",
        "--json",
    )
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert set(doc["mean"]) == {"2/255", "8/255"}
    assert doc["mean"]["8/255"]["lr_psnr"] < doc["mean"]["2/255"]["lr_psnr"]
    assert all(r["linf"] <= 8 / 255 + 1e-6 for r in doc["runs"][1]["rows"])
    (tmp_path / "m.png").write_bytes(b"")
    bad = [
        ["attack-sr", "--alpha", "1.5"],
        ["attack-sr", "--steps", "0"],
        ["attack-sr", "--reference", "clean"],
        ["attack-sr", "--attack", "partial", "--mask", "rect:0,0,999,1", "--hr-crop", "32"],
        ["attack-sr", "--attack", "sideways"],
        ["attack-sr", "--data", str(tmp_path / "empty")],
    ]
    (tmp_path / "empty").mkdir()
    for args in bad:
        r = cli(*args)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, (args, r.err)


def test_universal_attack_budget_save_and_apply(tmp_path) -> None:
    from advsr.attacks.universal import (
        apply_perturbation,
        center_crop_batch,
        load_perturbation,
        save_perturbation,
        universal_attack,
    )

    model = create_sr_model("demo-carn-m", 2)
    imgs = [_x(i, n=1, h=14 + i, w=12 + 2 * i) for i in range(5)]
    x0 = center_crop_batch(imgs, None)
    assert x0.shape == (5, 3, 14, 12)
    keep = x0.clone()
    res = universal_attack(model, x0, eps=EPS, steps=4, batch_size=2)
    delta, losses = res.outputs["delta"], res.diagnostics["losses"]
    assert torch.equal(x0, keep)
    assert delta.shape == (1, 3, 14, 12) and delta.abs().max() <= EPS + 1e-6
    assert losses.shape == (4,) and losses[-1] > losses[0]
    assert torch.allclose(res.x_adv, (x0 + delta).clamp(0, 1), atol=1e-7)
    # mini-batching does not change the result
    whole = universal_attack(model, x0, eps=EPS, steps=4, batch_size=5)
    assert torch.allclose(whole.outputs["delta"], delta)
    save_perturbation(tmp_path / "u.safetensors", delta, {"model": "demo-carn-m"})
    d = load_perturbation(tmp_path / "u.safetensors")
    big = _x(9, n=1, h=30, w=25)
    xa = apply_perturbation(d, big)
    assert xa.shape == big.shape and (xa - big).abs().max() <= EPS + 1e-6
    with pytest.raises(InputError, match="clean-8bit"):
        universal_attack(model, x0, reference="clean")
    with pytest.raises(ShapeError, match="smaller than the crop"):
        center_crop_batch(imgs, (20, 20))


def test_sr_side_defenses_and_adaptive_attack() -> None:
    from advsr.defenses import ResizeByOne, apply_sr_defense, defense_names

    model = create_sr_model("demo-edsr", 2)
    x = _x(4, n=1, h=16, w=16).requires_grad_(True)
    for name in defense_names("sr"):
        defended = apply_sr_defense(name, model)
        y = defended(x)
        assert y.shape == (1, 3, 32, 32) and not defended.training
        (g,) = torch.autograd.grad(y.sum(), x)
        assert g.abs().sum() > 0  # differentiable: the adaptive attack attacks it directly
    flat = torch.full((1, 3, 9, 7), 0.4)
    assert torch.allclose(ResizeByOne()(flat), flat, atol=1e-6)
    # self-ensemble of a transform-equivariant model (bicubic) is the model itself
    bic = create_sr_model("bicubic", 2)
    assert torch.allclose(apply_sr_defense("self-ensemble", bic)(x), bic(x), atol=1e-5)


def test_attack_sr_universal_defense_and_transfer_cli(cli, tmp_path) -> None:
    out = tmp_path / "delta.safetensors"
    res = cli(
        "attack-sr",
        "--model",
        "demo-carn-m",
        "--scale",
        "2",
        "--hr-crop",
        "48",
        "--attack",
        "universal",
        "--crop",
        "20",
        "--steps",
        "3",
        "--save-perturbation",
        str(out),
        "--json",
    )
    assert res.code == 0, res.err
    cell = json.loads(res.out)["runs"][0]
    assert out.exists() and len(cell["rows"]) == 4  # crafted on 4 images, measured on the others
    assert cell["info"]["crafted_on"] == ["astronaut", "chelsea", "coffee", "rocket"]
    assert {r["image"] for r in cell["rows"]}.isdisjoint(cell["info"]["crafted_on"])
    applied = cli(
        "attack-sr", "--model", "demo-edsr", "--scale", "2", "--hr-crop", "48",
        "--apply-perturbation", str(out), "--json",
    )  # fmt: skip
    assert applied.code == 0, applied.err
    rows = json.loads(applied.out)["runs"][0]["rows"]
    assert len(rows) == 8 and all(r["linf"] <= EPS for r in rows)
    non = cli(
        "attack-sr",
        "--model",
        "demo-edsr",
        "--scale",
        "2",
        "--hr-crop",
        "48",
        "--steps",
        "5",
        "--defense",
        "resize-by-one",
        "--json",
    )
    ada = cli(
        "attack-sr",
        "--model",
        "demo-edsr",
        "--scale",
        "2",
        "--hr-crop",
        "48",
        "--steps",
        "5",
        "--defense",
        "resize-by-one",
        "--adaptive",
        "--json",
    )
    sr_non = json.loads(non.out)["mean"]["8/255"]["sr_psnr"]
    sr_ada = json.loads(ada.out)["mean"]["8/255"]["sr_psnr"]
    assert sr_ada < sr_non  # crafting through the defense is stronger
    bad = cli("attack-sr", "--defense", "blur")
    assert bad.code == 2 and "did you mean" not in bad.out
    tr = cli(
        "transfer",
        "--model",
        "bicubic",
        "--model",
        "demo-edsr",
        "--scale",
        "2",
        "--hr-crop",
        "32",
        "--steps",
        "3",
        "--json",
    )
    assert tr.code == 0, tr.err
    m = json.loads(tr.out)["matrix"]
    assert len(m) == 2 and len(m[0]) == 2
    assert m[1][1] < m[1][0]  # an attack on edsr hurts edsr more than bicubic


def test_mask_file_of_the_wrong_size_is_one_line(cli, tmp_path) -> None:
    from advsr.io import write_image

    write_image(tmp_path / "mask.png", torch.ones(1, 3, 5, 5))
    res = cli(
        "attack-sr",
        "--attack",
        "partial",
        "--mask",
        str(tmp_path / "mask.png"),
        "--hr-crop",
        "32",
        "--scale",
        "2",
    )
    assert res.code == 2 and "mask" in res.err and res.err.count("\n") == 1
    ok = make_mask(str(tmp_path / "mask.png"), 5, 5)
    assert ok.shape == (1, 1, 5, 5) and ok.sum() == 25
