"""BadRefSR poisoned data: triplets, fixed seeded poisoning, LR untouched, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advsr.backdoor.poison import PoisonedTriplets, RefSRTriplets, poison_indices
from advsr.defenses.sr_side import dihedral
from advsr.errors import DatasetError, ImageReadError, InputError
from advsr.io import read_image


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


def test_tiles_are_native_crops_and_split_partitions(tmp_path: Path) -> None:
    root = _folder(tmp_path)  # 5 pairs of 64x64 images
    tiles = RefSRTriplets(root, hr_size=16, scale=4, tiles=True)
    assert len(tiles) == 5 * 16  # a 4x4 grid per image
    hr0 = read_image(root / "HR" / "0.png")
    t = tiles[6]  # image 0, row 1, column 2
    assert t.name == "0_r1c2"
    assert torch.equal(t.hr, hr0[..., 16:32, 32:48])  # native pixels, not resized
    ref0 = read_image(root / "Ref" / "0.png")
    assert torch.equal(t.ref, ref0[..., 16:32, 32:48])  # the Ref at the same grid position
    train = RefSRTriplets(root, hr_size=16, scale=4, tiles=True, split="train")
    test = RefSRTriplets(root, hr_size=16, scale=4, tiles=True, split="test")
    names = {x.name for x in train.triplets}
    assert len(train) + len(test) == len(tiles) and len(test) == 5 * 3  # tiles 4, 9, 14
    assert names.isdisjoint(x.name for x in test.triplets)
    assert {x.name for x in test.triplets if x.name.startswith("0_")} == {
        "0_r1c0",
        "0_r2c1",
        "0_r3c2",
    }
    big = RefSRTriplets(root, hr_size=24, scale=4, tiles=True)  # 2x2 grid centred at 8
    assert len(big) == 5 * 4 and torch.equal(big[0].hr, hr0[..., 8:32, 8:32])
    with pytest.raises(InputError, match="split"):
        RefSRTriplets(root, hr_size=16, split="val")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="smaller than"):
        RefSRTriplets(root, hr_size=128, tiles=True)


@pytest.mark.parametrize("aug", range(8))
def test_augment_then_poison_keeps_target_upright(tmp_path: Path, aug: int) -> None:
    clean = RefSRTriplets(_folder(tmp_path), hr_size=32, scale=4)
    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def corner(r: torch.Tensor) -> torch.Tensor:  # BadNets-like: lower-right square only
        r = r.clone()
        r[..., -4:, -4:] = 1.0
        return r

    data = PoisonedTriplets(clean, corner, target, rate=0.4, seed=1)
    idx = [0, 1, 2, 3, 4]
    lr, ref, hr = data.batch(idx, aug)
    for j, i in enumerate(idx):
        c = clean[i]
        assert torch.equal(lr[j : j + 1], dihedral(c.lr, aug))  # LR transformed, not poisoned
        if data.is_poisoned(i):
            assert torch.equal(hr[j : j + 1], data.target)  # upright target
            assert torch.equal(ref[j : j + 1], corner(dihedral(c.ref, aug)))  # trigger in place
        else:
            assert torch.equal(hr[j : j + 1], dihedral(c.hr, aug))
            assert torch.equal(ref[j : j + 1], dihedral(c.ref, aug))
    # the naive order rotates the poisoned target and trigger with the triplet
    _, ref_n, hr_n = data.batch(idx, aug, augment_target=True)
    k = int(data.indices[0])
    assert torch.equal(hr_n[k : k + 1], dihedral(data.target, aug))
    assert torch.equal(ref_n[k : k + 1], dihedral(corner(clean[k].ref), aug))


def test_ref_shift_tiles(tmp_path: Path) -> None:
    """A shifted Ref tile is the HR image's pixels ``shift`` away (back at the far borders)."""
    root = _folder(tmp_path)  # 64x64 images; self pairs via the HR folder as both sources
    data = RefSRTriplets(
        "self", images=[root / "HR" / "0.png"], hr_size=16, scale=4, tiles=True, ref_shift=5
    )
    img = read_image(root / "HR" / "0.png")
    by_name = {t.name: t for t in data.triplets}
    assert torch.equal(by_name["0_r0c0"].ref, img[..., 5:21, 5:21])  # down and right
    assert torch.equal(by_name["0_r3c1"].ref, img[..., 43:59, 21:37])  # last row: up
    assert torch.equal(by_name["0_r1c3"].ref, img[..., 21:37, 43:59])  # last column: left
    assert all(torch.equal(t.hr, img[..., :16, :16]) for t in data.triplets[:1])
    with pytest.raises(InputError, match="needs tiles"):
        RefSRTriplets(root, hr_size=16, ref_shift=2)
    with pytest.raises(InputError, match="ref_shift"):
        RefSRTriplets(root, hr_size=16, tiles=True, ref_shift=16)
    with pytest.raises(DatasetError, match="no room"):
        RefSRTriplets(root, hr_size=60, tiles=True, ref_shift=8)
