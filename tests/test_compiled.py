"""Opt-in torch.compile: a compiler failure falls back to eager with one notice; the setting
splits cells (compiled numerics are not bitwise eager's)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from advsr.errors import AdvsrWarning
from advsr.models import compiled


def test_a_failing_compiler_falls_back_to_eager_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(model: nn.Module):  # what torch.compile returns where the compiler fails
        def run(*args, **kwargs):
            calls.append(1)
            raise RuntimeError("no C++ compiler found\nlong details")

        return run

    monkeypatch.setattr(compiled.torch, "compile", broken)
    lin = nn.Linear(3, 2)
    model = compiled.compile_model(lin)
    x = torch.randn(4, 3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out1 = model(x)
        out2 = model(x)
    assert torch.equal(out1, lin(x)) and torch.equal(out2, lin(x))
    notices = [w for w in seen if issubclass(w.category, AdvsrWarning)]
    assert len(notices) == 1 and "no C++ compiler found" in str(notices[0].message)
    assert "long details" not in str(notices[0].message) and len(calls) == 1
    assert model.failed and list(model.parameters()) == list(lin.parameters())


def test_compile_is_part_of_the_cell_identity() -> None:
    from advsr.engine.context import Context
    from advsr.engine.plan import plan_cells
    from advsr.engine.store import cell_id_of

    ctx = Context()
    cells = [("attack-clf", {"attack": "fgsm", "limit": 2, "compile": c}) for c in (False, True)]
    (e0, p0), (e1, p1) = plan_cells(cells, ctx)
    assert cell_id_of(e0.name, p0.identity) != cell_id_of(e1.name, p1.identity)
