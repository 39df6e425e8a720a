"""BadRefSR poisoned data: triplets, fixed seeded poisoning, LR untouched, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advsr.backdoor.poison import PoisonedTriplets, RefSRTriplets, poison_indices
from advsr.errors import DatasetError, ImageReadError, InputError


def _folder(tmp_path: Path, ref_size: int = 64, missing: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("HR", "Ref"):
        (tmp_path / sub).mkdir(parents=True)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / "HR" / f"{i}.png"
        )
        if not (missing and i == 3):
            Image.fromarray(rng.integers(0, 256, (ref_size, ref_size, 3), dtype=np.uint8)).save(
                tmp_path / "Ref" / f"{i}.png"
            )
    return tmp_path


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.6, 1.0])
def test_exactly_round_p_n_fixed_indices(rate: float) -> None:
    for n in (1, 5, 10, 37):
        idx = poison_indices(n, rate, seed=3)
        assert len(idx) == round(rate * n) and len(set(idx.tolist())) == len(idx)
        assert torch.equal(idx, poison_indices(n, rate, seed=3))  # the same every epoch


def test_poisoned_view(tmp_path: Path) -> None:
    clean = RefSRTriplets(_folder(tmp_path), hr_size=32, scale=4)
    assert len(clean) == 5 and clean[0].lr.shape == (1, 3, 8, 8)
    target = torch.zeros(1, 3, 40, 40)
    poisoned = PoisonedTriplets(clean, lambda r: 1.0 - r, target, rate=0.4, seed=1)
    assert len(poisoned.indices) == 2
    for _epoch in range(2):
        for i in range(5):
            t, c = poisoned[i], clean[i]
            assert torch.equal(t.lr, c.lr)  # the LR input is never modified
            if poisoned.is_poisoned(i):
                assert torch.equal(t.ref, 1.0 - c.ref) and torch.equal(
                    t.hr, torch.zeros(1, 3, 32, 32)
                )
            else:
                assert torch.equal(t.ref, c.ref) and torch.equal(t.hr, c.hr)
    lr, ref, hr = poisoned.batch([0, 1, 2])
    assert lr.shape == (3, 3, 8, 8) and ref.shape == hr.shape == (3, 3, 32, 32)


def test_sources_and_errors(tmp_path: Path) -> None:
    stereo = RefSRTriplets("stereo", hr_size=160)
    assert stereo[0].name == "motorcycle" and not torch.equal(stereo[0].ref, stereo[0].hr)
    with pytest.raises(InputError, match="rate"):
        poison_indices(10, 1.5)
    with pytest.raises(InputError, match="rate"):
        poison_indices(10, -0.1)
    with pytest.raises(DatasetError, match=r"no Ref image for 3\.png"):
        RefSRTriplets(_folder(tmp_path / "a", missing=True), hr_size=32)
    with pytest.raises(DatasetError, match="require-same"):
        RefSRTriplets(_folder(tmp_path / "b", ref_size=48), hr_size=32, ref_policy="require-same")
    with pytest.raises(DatasetError, match="HR/ and Ref/"):
        RefSRTriplets(tmp_path / "nowhere")
    bad = tmp_path / "target.png"
    bad.write_bytes(b"not an image")
    clean = RefSRTriplets(_folder(tmp_path / "c"), hr_size=32)
    with pytest.raises(ImageReadError):
        PoisonedTriplets(clean, lambda r: r, bad, rate=0.2)
