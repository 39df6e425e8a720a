"""Datasets: samples, HR folders, paired folders (SelfExSR, BasicSR and DIV2K layouts), errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advsr.data import DATASETS, SamplesDataset, open_dataset
from advsr.data.layouts import detect_layout
from advsr.errors import DatasetError, InputError
from advsr.imaging import imresize, quantize
from tests.conftest import SET5, needs_shared


def _save(path: Path, h: int, w: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return a


def test_samples_are_real_rgb_images_from_packages() -> None:
    ds = SamplesDataset(scale=4, hr_crop=64)
    assert ds.names() == [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "motorcycle_left",
        "motorcycle_right",
        "china",
        "flower",
    ]
    p = ds[1]
    assert p.hr.shape == (1, 3, 64, 64) and p.lr.shape == (1, 3, 16, 16)
    assert p.hr.std() > 0.05  # a photograph, not a constant
    assert torch.equal(p.lr, quantize(imresize(p.hr, 0.25)))
    full = open_dataset("samples", scale=3)
    assert full[0].hr.shape == (1, 3, 510, 510)  # 512 mod-cropped to 3
    assert "samples" in DATASETS


def test_hr_folder_and_single_file(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", 30, 21)
    _save(tmp_path / "b.bmp", 16, 16, 1)
    ds = open_dataset(tmp_path, scale=4)
    assert ds.kind == "hr-folder" and ds.names() == ["a", "b"]
    assert ds[0].hr.shape == (1, 3, 28, 20) and ds[0].lr.shape == (1, 3, 7, 5)
    one = open_dataset(tmp_path / "b.bmp", scale=2)
    assert len(one) == 1 and one[0].lr.shape == (1, 3, 8, 8)
    float_lr = open_dataset(tmp_path, scale=4, lr_bits=None)[0].lr
    assert not torch.equal(float_lr, ds[0].lr)


def test_selfexsr_and_basicsr_layouts(tmp_path: Path) -> None:
    root = tmp_path / "Set"
    for s in (2, 4):
        for i in range(2):
            _save(root / f"image_SRF_{s}" / f"img_{i}_SRF_{s}_HR.png", 8 * s, 4 * s, i)
            _save(root / f"image_SRF_{s}" / f"img_{i}_SRF_{s}_LR.png", 8, 4, i + 10)
    ds = open_dataset(root, scale=4)
    assert ds.kind == "paired-selfexsr" and ds.names() == ["img_0_SRF_4", "img_1_SRF_4"]
    assert ds[1].lr.shape == (1, 3, 8, 4) and ds[1].hr.shape == (1, 3, 32, 16)
    with pytest.raises(DatasetError, match="no image_SRF_3"):
        open_dataset(root, scale=3)
    with pytest.raises(DatasetError, match="does not match"):
        open_dataset(root / "image_SRF_2", scale=4)

    b = tmp_path / "div2k"
    _save(b / "HR" / "0001.png", 25, 18)  # one pixel more than 3x LR: mod-cropped
    _save(b / "LR_bicubic" / "X3" / "0001x3.png", 8, 6)
    d = open_dataset(b, scale=3)
    assert d.kind == "paired-basicsr" and d[0].hr.shape == (1, 3, 24, 18)
    with pytest.raises(DatasetError, match="X2 is missing"):
        open_dataset(b, scale=2)


def test_gtmod12_div2k_and_hr_only_layouts(tmp_path: Path) -> None:
    g = tmp_path / "Set14"  # BasicSR's benchmark folders
    _save(g / "GTmod12" / "a.png", 24, 12)
    _save(g / "LRbicx4" / "a.png", 6, 3)
    _save(g / "LRbicx2" / "ax2.png", 12, 6)
    ds = open_dataset(g, scale=4)
    assert ds.kind == "paired-basicsr" and ds.keys() == ["GTmod12/a.png"] and ds.lr_files
    assert ds[0].lr.shape == (1, 3, 6, 3) and open_dataset(g, scale=2)[0].lr.shape[-2:] == (12, 6)
    with pytest.raises(DatasetError, match=r"LRbicx3 is missing \(found LRbicx2, LRbicx4\)"):
        open_dataset(g, scale=3)
    d = tmp_path / "DIV2K"  # DIV2K's own names
    _save(d / "DIV2K_valid_HR" / "0801.png", 16, 16)
    _save(d / "DIV2K_valid_LR_bicubic" / "X2" / "0801x2.png", 8, 8)
    assert open_dataset(d, scale=2).kind == "paired-basicsr"
    with pytest.raises(DatasetError, match=r"X4 is missing \(found X2\)"):
        open_dataset(d, scale=4)
    h = tmp_path / "plain"  # HR/ with no LR folder beside it: LR by bicubic
    _save(h / "HR" / "a.png", 16, 16)
    only = open_dataset(h, scale=4)
    assert only.kind == "hr-folder" and only.keys() == ["a.png"]
    layouts = [detect_layout(p) for p in (g, d, h, tmp_path / "Set")]
    assert [x.name if x else None for x in layouts] == ["basicsr", "div2k", "hr-folder", None]


def test_wrong_size_lr_file_is_named(tmp_path: Path) -> None:
    _save(tmp_path / "HR" / "a.png", 16, 16)
    _save(tmp_path / "LR_bicubic" / "X2" / "ax2.png", 4, 4)
    lr = tmp_path / "LR_bicubic" / "X2" / "ax2.png"
    with pytest.raises(DatasetError, match="fit scale 4") as err:
        open_dataset(tmp_path, scale=2)
    assert str(err.value).startswith(f"scale 2 does not match {lr}: LR 4x4, HR 16x16")


def test_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="did you mean 'samples'"):
        open_dataset("sample", scale=2)
    with pytest.raises(DatasetError, match="no images"):
        open_dataset(tmp_path, scale=2)
    _save(tmp_path / "tiny.png", 3, 3)
    with pytest.raises(DatasetError, match="smaller than the scale"):
        open_dataset(tmp_path, scale=4)
    with pytest.raises(InputError):
        open_dataset("samples", scale=0)
    with pytest.raises(InputError):
        open_dataset("samples", scale=2, hr_crop=0)
    (tmp_path / "x_HR.png").write_bytes(b"")
    with pytest.raises(DatasetError):
        open_dataset(tmp_path, scale=2)


def test_identity_changes_with_content(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", 16, 16)
    id1 = open_dataset(tmp_path, scale=2).identity()
    assert id1 == open_dataset(tmp_path, scale=2).identity()
    _save(tmp_path / "b.png", 16, 16)
    assert open_dataset(tmp_path, scale=2).identity() != id1
    assert open_dataset(tmp_path, scale=2, hr_crop=8).identity() != id1


@needs_shared
def test_shared_set5_layout() -> None:
    ds = open_dataset(SET5 / "image_SRF_4", scale=4)
    assert len(ds) == 5 and ds[0].hr.shape == (1, 3, 512, 512)
    with pytest.raises(DatasetError, match="fit scale 4"):
        open_dataset(SET5 / "image_SRF_4", scale=7)
