"""The attack contract, generated from the one registry: every attack of every kind.

A new attack is covered the moment it is registered: budget (per its norm, exactly in
float32), [0, 1], input unchanged, seeded determinism (a different result for another seed
exactly when the attack says it is stochastic), modes restored, diagnostics per image, and
success on the bundled digits classifier or a tiny SR model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advsr.attacks import ATTACKS, AttackResult, create_attack
from advsr.data.labelled import open_labelled
from advsr.errors import InputError, ShapeError
from advsr.models.classifiers import create_classifier
from advsr.models.sr import create_sr_model

# budgets: a small one (the contract) and a large one (success); per budget norm
SMALL = {"linf": 8 / 255, "l2": 0.5, "ssim": 0.05, "none": None}
LARGE = {"linf": 0.3, "l2": 6.0, "ssim": 0.3, "none": None}
QUICK = {"steps": 3}  # settings that keep every attack quick (where it has them)


def _settings(name: str) -> dict[str, object]:
    fields = ATTACKS.get(name).settings.model_fields
    out = {k: v for k, v in QUICK.items() if k in fields}
    if name == "cw-l2":
        out["binary_search_steps"] = 2
    return out


def _classifier_data(n: int = 6) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    data = open_labelled("digits-test", limit=n)
    return create_classifier("digits-cnn"), data.x, data.y


def _sr_data(n: int = 3) -> tuple[nn.Module, torch.Tensor, None]:
    model = create_sr_model("edsr-baseline", 2, arch={"n_resblocks": 1, "n_feats": 8})
    x = torch.rand(n, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    return model, x, None


def _inputs(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None]:
    return _sr_data() if ATTACKS.get(name).domain == "sr" else _classifier_data()


def _size(res: AttackResult, norm: str) -> torch.Tensor:
    d = (res.x_adv - res.x).flatten(1)  # in the returned dtype, as a user computes it
    return d.abs().amax(1).double() if norm == "linf" else d.double().norm(dim=1)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_contract(name: str) -> None:
    entry = ATTACKS.get(name)
    model, x, y = _inputs(name)
    model.train()
    keep = x.clone()
    attack = create_attack(name, eps=SMALL[entry.norm], **_settings(name))
    res = attack(model, x, y, generator=torch.Generator().manual_seed(3))
    assert model.training and all(m.training for m in model.modules())  # modes restored
    assert torch.equal(x, keep)  # input unchanged
    assert res.x_adv.dtype == x.dtype and res.x_adv.shape == x.shape
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    if entry.norm in ("linf", "l2"):  # the budget holds exactly as returned
        assert bool((_size(res, entry.norm) <= SMALL[entry.norm]).all()), name
        assert bool((res.linf <= SMALL["linf"]).all()) or entry.norm == "l2"
    if entry.norm == "ssim":
        assert {"s1", "s2", "ssim_global", "within_budget"} <= set(res.outputs)
    assert res.success.shape == (x.shape[0],) and res.success.dtype == torch.bool
    assert res.failed.shape == (x.shape[0],)
    rows = res.per_image()
    assert len(rows) == x.shape[0] and {"success", "linf", "l2", "failed"} <= set(rows[0])
    again = attack(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(res.x_adv, again.x_adv)  # seeded determinism
    other = attack(model, x, y, generator=torch.Generator().manual_seed(4))
    assert torch.equal(res.x_adv, other.x_adv) != attack.stochastic, name


@pytest.mark.parametrize("name", ATTACKS.names())
def test_success_with_a_large_budget(name: str) -> None:
    entry = ATTACKS.get(name)
    model, x, y = _inputs(name)
    settings = _settings(name) if entry.domain == "sr" else {}  # the attack's defaults
    attack = create_attack(name, eps=LARGE[entry.norm], **settings)
    res = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    rate = float(res.success.float().mean())
    assert rate >= (1.0 if entry.domain == "sr" else 0.5), (name, rate)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_bad_inputs_are_refused(name: str) -> None:
    entry = ATTACKS.get(name)
    model, x, y = _inputs(name)
    eps = SMALL[entry.norm]
    attack = create_attack(name, eps=eps, **_settings(name))
    with pytest.raises(ShapeError):
        attack(model, x[0], y)  # not a batch
    with pytest.raises(ShapeError):
        attack(model, x + 2.0, y)  # outside [0, 1]
    if entry.domain == "classifier":
        assert y is not None
        with pytest.raises(ShapeError):
            attack(model, x, y[:2])
    if entry.norm == "none":
        with pytest.raises(InputError, match="takes no budget"):
            create_attack(f"{name}@0.1")
    else:
        with pytest.raises(InputError):
            create_attack(name, eps=-0.1)
        with pytest.raises(InputError, match="needs a budget"):
            create_attack(name)
    with pytest.raises(InputError, match=r"did you mean|known:"):
        create_attack(name, eps=eps, **{"stpes": 3})


def test_name_at_budget_and_labels() -> None:
    a = create_attack("pgd@8/255", steps=5)
    assert a.eps == 8 / 255 and a.label == "pgd@8/255" and a.stochastic
    assert create_attack("fpgap@0.05").label == "fpgap@0.05"
    assert create_attack("deepfool").identity()["eps"] is None
    with pytest.raises(InputError, match="already gives a budget"):
        create_attack("pgd@8/255", eps=0.1)
    with pytest.raises(InputError):
        create_attack("pgd@abc")
    # settings that cannot change the result are not part of the identity
    assert "kappa" not in create_attack("pgd@8/255", kappa=3.0).identity()["settings"]
    assert "batch_size" not in create_attack("universal@8/255").identity()["settings"]
