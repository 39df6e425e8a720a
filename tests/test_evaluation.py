"""Evaluation that can be trusted: APGD, Square, the worst-case ensemble, per-attack
settings, the gradient-masking flags, repeated draws, the classifier self-ensemble and APGD
on SR objectives."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advsr.attacks import create_attack
from advsr.attacks.apgd import apgd_checkpoints, apgd_run, dlr_loss, dlr_targeted_loss
from advsr.attacks.base import spec_options
from advsr.attacks.probes import cell_flags, cross_cell_flags, probe_batch
from advsr.attacks.square import square_p
from advsr.data.labelled import digits
from advsr.errors import InputError
from advsr.models.classifiers import create_classifier


def _digits(n: int = 24) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = create_classifier("digits-cnn").eval()
    ds = digits("test")
    with torch.no_grad():
        ok = model(ds.x[:64]).argmax(1) == ds.y[:64]
    return model, ds.x[:64][ok][:n], ds.y[:64][ok][:n]


def _paper_checkpoints(n: int) -> list[int]:
    """The paper's p_j in exact arithmetic, w_j = ceil(p_j N)."""
    p = [Fraction(0), Fraction(22, 100)]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100))
        if nxt > 1:
            break
        p.append(nxt)
    return [-(-int(q * n * 1000) // 1000) for q in p[1:]]


@pytest.mark.parametrize("n", [100, 1000])
def test_apgd_checkpoints_follow_the_paper(n: int) -> None:
    assert apgd_checkpoints(n) == _paper_checkpoints(n)


def test_dlr_losses_match_a_numpy_port_of_the_formulas() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 10))
    y = rng.integers(0, 10, size=6)
    t = (y + 1 + rng.integers(0, 8, size=6)) % 10
    s = -np.sort(-z, axis=1)
    other = np.array([max(z[i, j] for j in range(10) if j != y[i]) for i in range(6)])
    want = -(z[np.arange(6), y] - other) / (s[:, 0] - s[:, 2] + 1e-12)
    got = dlr_loss(torch.tensor(z), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)
    want_t = -(z[np.arange(6), y] - z[np.arange(6), t]) / (
        s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + 1e-12
    )
    got_t = dlr_targeted_loss(torch.tensor(z), torch.tensor(y), torch.tensor(t)).numpy()
    np.testing.assert_allclose(got_t, want_t, rtol=1e-10)
    assert np.allclose(dlr_loss(torch.tensor(3 * z + 7), torch.tensor(y)).numpy(), want)


def test_apgd_reaches_the_corner_of_the_box_on_a_linear_objective() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = 0.25 + 0.5 * torch.rand(3, 1, 4, 4, generator=g)
    w = torch.randn(3, 1, 4, 4, generator=g)
    eps = 0.1

    def vg(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (w * x).flatten(1).sum(1), w.clone(), torch.zeros(3, dtype=torch.bool)

    out = apgd_run(vg, x0, eps, "linf", 20, generator=g)
    assert torch.allclose(out["x_best"], x0 + eps * w.sign(), atol=1e-6)
    best = (w * (x0 + eps * w.sign())).flatten(1).sum(1)
    assert torch.allclose(out["loss_best"], best, atol=1e-5)
    assert out["losses"].shape == (21, 3)


def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_steps() -> None:
    model, x, y = _digits()
    g = torch.Generator().manual_seed(0)
    apgd = create_attack("apgd@8/255:steps=20")(model, x, y, generator=g).success.float().mean()
    g = torch.Generator().manual_seed(0)
    pgd = create_attack("pgd@8/255:steps=20")(model, x, y, generator=g).success.float().mean()
    assert float(apgd) >= float(pgd)
    t = create_attack("apgd-t@8/255:steps=10,targets=3")(model, x, y, generator=g)
    assert bool((t.linf <= 8 / 255 + 1e-7).all())


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def, override]
        return x.clone()

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def, override]
        raise AssertionError("a score-based attack asked for a gradient")


def test_square_needs_scores_only_and_counts_its_queries() -> None:
    model, x, y = _digits(12)

    class Scores(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return model(_NoBackward.apply(t))

    res = create_attack("square@16/255:queries=300")(
        Scores(), x, y, generator=torch.Generator().manual_seed(0)
    )
    q = res.diagnostics["queries"]
    assert bool((res.linf <= 16 / 255 + 1e-7).all()) and int(q.max()) <= 300
    assert float(res.success.float().mean()) > 0
    assert bool((q[res.success.cpu()] < 300).all())  # fooled images stop using queries
    assert [square_p(0.8, i, 5000) for i in (0, 5, 6, 25, 26)] == [0.8, 0.8, 0.4, 0.4, 0.2]


def test_the_ensemble_is_the_worst_case_over_its_members() -> None:
    model, x, y = _digits()
    specs = ["fgsm", "pgd:steps=10", "square:queries=200"]
    singles = []
    for spec in specs:
        name, _, opts = spec.partition(":")
        a = create_attack(f"{name}@8/255" + (f":{opts}" if opts else ""))
        singles.append(a(model, x, y, generator=torch.Generator().manual_seed(0)).success)
    ens = create_attack("ensemble@8/255", members=specs)
    res = ens(model, x, y, generator=torch.Generator().manual_seed(0))
    assert create_attack("ensemble@8/255:members=fgsm+square").settings.members == [
        "fgsm",
        "square",
    ]
    broken = res.diagnostics["broken_by"]
    assert float(res.success.float().mean()) >= max(float(s.float().mean()) for s in singles)
    assert set(broken.tolist()) <= {-1, 0, 1, 2}
    assert bool((broken >= 0).eq(res.success.cpu()).all())
    assert bool((broken[singles[0].cpu()] == 0).all())  # FGSM's images are credited to it


def test_attack_settings_in_the_spec() -> None:
    assert spec_options("pgd@8/255:steps=100,restarts=5") == {"steps": 100, "restarts": 5}
    a = create_attack("pgd@8/255:steps=100,loss=cw,kappa=5")
    assert a.label == "pgd@8/255:steps=100,loss=cw,kappa=5.0"
    assert (a.settings.steps, a.settings.loss, a.settings.kappa) == (100, "cw", 5.0)
    with pytest.raises(InputError, match="did you mean 'steps'"):
        create_attack("pgd@8/255:stesp=3")
    with pytest.raises(InputError, match="key=value"):
        create_attack("pgd@8/255:steps")
    with pytest.raises(InputError, match="takes the ensemble's budget"):
        create_attack("ensemble@8/255:members=pgd@1/255")(*_digits(2), generator=torch.Generator())


class _Flat(nn.Module):
    """A classifier whose input gradient is zero: it rounds its input to 2 levels."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base((x > 0.5).float())


def test_flags_fire_on_masked_gradients_and_stay_clear_on_the_plain_model() -> None:
    model, x, y = _digits(8)
    attack = create_attack("pgd@8/255:steps=10")
    res = attack(model, x, y, generator=torch.Generator().manual_seed(0))

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(1)

    probes = probe_batch(model, None, x, y, attack, res, 0, gen)
    rows = [{k: float(v[j]) for k, v in probes.items()} for j in range(len(y))]
    assert cell_flags(rows) == []
    flat = _Flat(model).eval()
    res = attack(flat, x, y, generator=torch.Generator().manual_seed(0))
    probes = probe_batch(flat, None, x, y, attack, res, 0, gen)
    rows = [{k: float(v[j]) for k, v in probes.items()} for j in range(len(y))]
    names = {f["flag"] for f in cell_flags(rows)}
    assert {"zero-gradients", "loss-not-rising"} <= names


def test_cross_cell_flags() -> None:
    def cell(cid: str, eps: float, mode: str, correct: list[int]) -> dict:
        rows = [{"key": str(i), "correct": float(c)} for i, c in enumerate(correct)]
        return {"id": cid, "group": ("d", mode), "eps": eps, "mode": mode, "label": f"pgd@{eps}",
                "pair": ("d", eps), "rows": rows}  # fmt: skip

    flags = cross_cell_flags(
        [
            cell("a", 1.0, "non-adaptive", [1, 0, 0, 0]),
            cell("b", 2.0, "non-adaptive", [1, 1, 1, 1]),  # more correct at a larger budget
            cell("c", 1.0, "adaptive", [1, 1, 1, 0]),  # adaptive above non-adaptive
        ]
    )
    assert [f["flag"] for f in flags["b"]] == ["accuracy-rises-with-eps"]
    got = {f["flag"] for f in flags["c"]}
    assert got == {"adaptive-above-non-adaptive", "black-box-beats-white-box"}
    assert "a" not in flags


def test_defend_counts_random_defenses_over_draws_and_flags_a_single_draw(
    cli, tmp_path: Path
) -> None:
    res = cli(
        "defend", "--attack", "pgd@8/255:steps=5", "--defense", "resize-pad", "--mode",
        "non-adaptive", "--mode", "adaptive", "--eot", "2", "--draws", "5", "--limit", "12",
        "--store", str(tmp_path / "s"), "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    rows = {r["defense"]: r for r in doc["tables"]["non-adaptive"]["rows"]}
    single = rows["resize-pad"]["pgd@8/255:steps=5"]
    draws = rows["resize-pad"]["pgd@8/255:steps=5:all_draws"]
    assert draws is not None and draws <= single
    flags = {(f["mode"], f["flag"]) for f in doc["flags"]}
    assert ("non-adaptive", "random-without-eot") in flags
    assert ("adaptive", "random-without-eot") not in flags
    assert doc["draws"] == 5


def test_classifier_self_ensemble_averages_the_eight_views() -> None:
    from advsr.defenses import create_defense
    from advsr.defenses.adaptive import defend
    from advsr.defenses.sr_side import dihedral

    model, x, _ = _digits(3)
    out = defend(model, create_defense("self-ensemble"))(x)
    with torch.no_grad():
        p = torch.stack([torch.softmax(model(dihedral(x, k)), 1) for k in range(8)]).mean(0)
    assert torch.allclose(out.exp(), p, atol=1e-5)


def test_defense_listing_says_what_the_adaptive_attack_does(cli) -> None:
    doc = json.loads(cli("list", "defenses", "--json").out)
    adaptive = {r["name"]: r["adaptive"] for r in doc["defenses"]}
    assert adaptive["tvm"] == "EOT of BPDA" and adaptive["jpeg"] == "BPDA"
    assert adaptive["resize-pad"] == "EOT" and adaptive["self-ensemble"] == "attack directly"


def test_apgd_schedule_on_sr_objectives_is_stronger_than_ifgsm() -> None:
    from advsr.data import open_dataset
    from advsr.metrics import psnr
    from advsr.models.sr import create_sr_model

    model = create_sr_model("demo-carn-m", 4)
    ds = open_dataset("samples", 4, hr_crop=48)
    x = torch.cat([ds[i].lr for i in range(3)])
    out = {}
    for schedule in ("ifgsm", "apgd"):
        a = create_attack(f"basic@8/255:steps=10,schedule={schedule}")
        r = a(model, x, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out[schedule] = float(psnr(model(r.x_adv), model(x)).mean())
        assert bool((r.linf <= 8 / 255 + 1e-7).all())
    assert out["apgd"] < out["ifgsm"]
    ident = create_attack("basic@8/255").identity()["settings"]
    assert "schedule" not in ident  # cells stored before the schedule existed still match


def test_non_adaptive_cells_judge_gradients_on_the_deployed_defense(cli, tmp_path) -> None:
    """A transfer attack never sees the defense: the zero-gradient check runs through the
    defense as deployed, so JPEG and K-means (no useful gradient) are flagged and the
    differentiable median is not."""
    import json

    res = cli(
        "defend", "--attack", "fgsm@0.1", "--defense", "jpeg", "--defense", "median:size=3x3",
        "--defense", "kmeans", "--limit", "4", "--store", str(tmp_path / "s.sqlite"), "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    flags = json.loads(res.out)["flags"]
    zero = {f["defense"] for f in flags if f["flag"] == "zero-gradients"}
    assert zero == {"jpeg", "kmeans"}
    assert all(f["mode"] == "non-adaptive" for f in flags)


def test_probes_sample_full_off(cli, tmp_path) -> None:
    """The default probes look at the cell's first images (not each batch's: two batches
    here); full at all; off at none, which every table says; their time share is in
    --json."""
    import json
    import math

    from advsr.engine.store import ResultStore

    store = tmp_path / "p.sqlite"
    base = ("defend", "--attack", "fgsm@0.1", "--defense", "median:size=3x3", "--limit", "8",
            "--batch-size", "4", "--store", str(store), "--json")  # fmt: skip
    docs = {mode: json.loads(cli(*base, "--probes", mode).out) for mode in ("sample", "full")}
    off = cli(*base, "--probes", "off")
    docs["off"] = json.loads(off.out)
    with ResultStore(store) as st:
        rows = {c["cell_id"]: st.cell_rows(c["cell_id"]) for d in docs.values() for c in d["cells"]}
    probed = {}
    for mode, doc in docs.items():
        counts = []
        for cell in doc["cells"]:  # the clean cell and the attacked one
            assert cell["probes"] == mode
            share = cell["probe_time_share"]
            assert share is not None and 0.0 <= share < 1.0
            zero = [r.get("grad_zero") for r in rows[cell["cell_id"]]]
            counts.append(sum(z is not None and not math.isnan(z) for z in zero))
        probed[mode] = max(counts)
    assert probed == {"sample": 4, "full": 8, "off": 0}
    assert docs["off"]["probes_off"] == ["median:size=3x3", "none"]
    assert not docs["off"]["flags"]
    table = cli(*base[:-1], "--probes", "off").out
    assert "probes off: no flags (median:size=3x3, none)" in table


def test_attack_first_step_gradient_is_the_zero_gradient_probe() -> None:
    """A cross-entropy attack from x0 takes the probe's gradient in its first step; the
    probe reads it from there for every image instead of taking it again, and a masked
    (zero-gradient) model reads 1."""
    import torch

    from advsr.attacks import create_attack
    from advsr.attacks.probes import _input_grad_zero, probe_batch
    from advsr.models.classifiers import create_classifier

    model = create_classifier("digits-cnn")
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6)

    class Rounding(torch.nn.Module):  # a rounding input stage: zero gradient
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return model((v * 4).round() / 4)

    for net, expect in ((model, 0.0), (Rounding().eval(), 1.0)):
        res = create_attack("ifgsm@0.1", steps=2)(net, x, y)
        seen = res.diagnostics["grad_zero"]
        assert torch.equal(seen, _input_grad_zero(net, x, y)) and set(seen.tolist()) == {expect}
        probes = probe_batch(net, None, x, y, create_attack("ifgsm@0.1"), res, 0, torch.Generator)
        assert torch.equal(probes["grad_zero"], seen)  # every image, not only the sample
    assert "grad_zero" not in create_attack("pgd@0.1", steps=2)(model, x, y).diagnostics


def test_deployed_gradient_probe_shared_by_the_attacks_of_a_run(cli, tmp_path, monkeypatch) -> None:
    """The deployed model's input-gradient probe does not depend on the attack: two
    non-adaptive attacks take it once per defense (the row "none" and the median), not
    once per cell."""
    import json

    from advsr.attacks import probes as checks

    calls = []
    real = checks._input_grad_zero

    def counted(*args):
        calls.append(args[1].shape[0])
        return real(*args)

    monkeypatch.setattr(checks, "_input_grad_zero", counted)
    res = cli(
        "defend", "--attack", "fgsm@0.1", "--attack", "ifgsm@0.1", "--defense", "median:size=3x3",
        "--mode", "non-adaptive", "--limit", "4", "--store", str(tmp_path / "s.sqlite"), "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert calls == [4, 4]
    cells = json.loads(res.out)["cells"]
    assert len([c for c in cells if c.get("probes") == "sample"]) >= 4
