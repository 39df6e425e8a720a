"""ImageNet support: the class list, the dataset layouts, the evaluation view, and the
EfficientNet-Lite0 classifier against the 20 foolbox ImageNet samples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from advsr.data.imagenet import IMAGENET_WNIDS, imagenet_names, resize_center_crop, wnid_label
from advsr.data.labelled import open_labelled
from advsr.errors import DatasetError, ModelLoadError
from advsr.io import write_image
from tests.conftest import SHARED, needs_shared


def test_the_class_list_is_the_standard_sorted_wnid_order() -> None:
    assert len(IMAGENET_WNIDS) == 1000 == len(set(IMAGENET_WNIDS))
    assert list(IMAGENET_WNIDS) == sorted(IMAGENET_WNIDS)
    # fixed points every ImageNet classifier agrees on
    assert IMAGENET_WNIDS[0] == "n01440764" and imagenet_names()[0] == "tench"
    assert imagenet_names()[281] == "tabby" and IMAGENET_WNIDS[999] == "n15075141"
    assert wnid_label("n02123045") == 281 and wnid_label("n99999999_1.JPEG") is None


def _png(path: Path, h: int = 8, w: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, torch.rand(1, 3, h, w))


def test_wnid_class_folders_are_labelled_by_wnid_not_by_position(tmp_path: Path) -> None:
    _png(tmp_path / "n02123045" / "a.png")
    _png(tmp_path / "n15075141" / "b.png")
    ds = open_labelled(tmp_path)
    assert ds.y.tolist() == [281, 999] and len(ds.classes) == 1000
    (tmp_path / "n02123045" / "a.png").unlink()
    (tmp_path / "n02123045").rmdir()
    _png(tmp_path / "cats" / "c.png")  # not all wnids: plain alphabetical class folders
    assert open_labelled(tmp_path).y.tolist() == [0, 1]


def test_flat_names_take_the_leading_wnid_before_a_numeric_suffix(tmp_path: Path) -> None:
    _png(tmp_path / "n02123045_10026.png")
    _png(tmp_path / "imagenet_07_609.png")
    ds = open_labelled(tmp_path)
    assert dict(zip(ds.names, ds.y.tolist(), strict=True)) == {
        "imagenet_07_609": 609,
        "n02123045_10026": 281,
    }
    _png(tmp_path / "cat.png")
    with pytest.raises(DatasetError, match="starting with an ImageNet wnid"):
        open_labelled(tmp_path)


def test_size_resizes_and_centre_crops_images_of_any_size(tmp_path: Path) -> None:
    _png(tmp_path / "a_1.png", 40, 60)
    _png(tmp_path / "b_2.png", 50, 30)
    with pytest.raises(DatasetError):
        open_labelled(tmp_path)  # different sizes
    assert open_labelled(tmp_path, size=16).x.shape == (2, 3, 16, 16)


def test_the_evaluation_view_is_a_plain_centre_crop_when_no_resize_is_needed() -> None:
    x = torch.rand(1, 3, 256, 300)  # the shorter side is already 224 / 0.875
    ref = x[..., 16:240, 38:262]
    assert torch.allclose(resize_center_crop(x, 224), ref, atol=1e-6)
    y = resize_center_crop(torch.rand(2, 3, 512, 683), 224)
    assert y.shape == (2, 3, 224, 224) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_a_missing_extra_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from advsr.models.classifiers import create_classifier

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ModelLoadError, match=r"advsr\[imagenet\]"):
        create_classifier("efficientnet-lite0-imagenet")


def test_quilting_banks_can_come_from_the_embedded_photographs() -> None:
    from advsr.defenses.quilting import _bank_from_data

    bank = _bank_from_data("samples", 2, 0, None, 5, 500, 0, 24)
    assert len(bank) == 500 and bank.patches.shape[1] == 3 * 5 * 5


@needs_shared
@pytest.mark.slow
def test_efficientnet_lite0_gets_the_foolbox_imagenet_samples_right() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from advsr.models.classifiers import create_classifier

    clf = create_classifier("efficientnet-lite0-imagenet")
    assert sum(p.numel() for p in clf.parameters()) == 4_652_008
    ds = open_labelled(SHARED / "samples_foolbox", pattern="imagenet_*", size=224)
    assert len(ds) == 20 and ds.x.shape[-2:] == (224, 224)
    with torch.no_grad():
        hits = int((clf(ds.x).argmax(1) == ds.y).sum())
    # measured 17 of 20 (the issue expects about 16-18); torchvision's mean/std gives 15
    assert hits >= 16
