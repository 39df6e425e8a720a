"""Named benchmark sets (Set5, Set14, B100, Urban100, Manga109, DIV2K-valid) under
$ADVSR_DATA: the layouts found, the listing, identity by content, the errors.

The shared-data tests build, in a temporary folder, Set5 in the SelfExSR layout (the real
Set5 of ../shared/data/sr/Set5, which is in that layout), Set14 in the BasicSR layout made
from it (GTmod12 + LRbicx2/LRbicx4, LR by MATLAB bicubic) and Urban100 as a plain HR folder
(Set14's HR images under HR/).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advsr.data import DatasetNotFoundError, open_dataset
from advsr.data.inventory import data_files
from advsr.errors import AdvsrError, DatasetError
from advsr.files import data_digest
from advsr.imaging import quantize
from advsr.imaging.resize import imresize, modcrop
from advsr.io import read_image, write_image
from tests.conftest import SET5, needs_shared

SET5_NAMES = ("baby", "bird", "butterfly", "head", "woman")  # img_001 ... img_005


def _one_line(res, *needles: str) -> str:
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advsr: error: "), res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _save(path: Path, h: int, w: int, seed: int = 0) -> None:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SET5.is_dir():
        pytest.skip("../shared/data (validation data) is not beside the checkout")
    root = tmp_path_factory.mktemp("advsr-data")
    for sub in sorted(SET5.glob("image_SRF_*")):  # SelfExSR already: copied as it is
        shutil.copytree(sub, root / "Set5" / sub.name)
    for i, name in enumerate(SET5_NAMES, 1):  # BasicSR: renamed, cut to 12, LR by bicubic
        hr = modcrop(read_image(SET5 / "image_SRF_4" / f"img_{i:03d}_SRF_4_HR.png"), 12)
        write_image(root / "Set14" / "GTmod12" / f"{name}.png", hr)
        for s in (2, 4):
            write_image(
                root / "Set14" / f"LRbicx{s}" / f"{name}.png", quantize(imresize(hr, 1 / s))
            )
    shutil.copytree(root / "Set14" / "GTmod12", root / "Urban100" / "HR")  # HR alone
    return root


def _eval(cli, data: str, store: Path, *extra: str) -> dict:
    res = cli("eval-sr", "--model", "bicubic", "--data", data, "--scale", "4", "--json",
              "--store", str(store), *extra)  # fmt: skip
    assert res.code == 0, res.err
    return json.loads(res.out)


@needs_shared
@pytest.mark.shared
def test_listing_finds_each_set_in_its_layout(cli, data_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("ADVSR_DATA", str(data_root))
    res = cli("list", "datasets", "--json")
    assert res.code == 0, res.err
    rows = {r["name"]: r for r in json.loads(res.out)["datasets"]}
    assert rows["Set5"]["layout"] == "selfexsr" and rows["Set5"]["scales"] == [2, 4]
    assert rows["Set5"]["where"] == str(data_root / "Set5")
    assert rows["Set14"]["layout"] == "basicsr" and rows["Set14"]["scales"] == [2, 4]
    assert rows["Urban100"]["layout"] == "hr-folder" and rows["Urban100"]["scales"] == "any"
    assert rows["B100"]["where"] == (
        f"not found (looked in: {data_root / 'B100'}, {data_root / 'BSD100'}, "
        f"{data_root / 'BSDS100'})"
    )
    listed = cli("datasets")  # the older listing command lists them too
    assert listed.code == 0 and "Urban100" in listed.out and "selfexsr" in listed.out


@needs_shared
@pytest.mark.shared
def test_a_named_set_is_its_files_by_path(cli, data_root: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ADVSR_DATA", str(data_root))
    by_name = _eval(cli, "Set5", tmp_path / "a.sqlite")
    by_path = _eval(cli, str(data_root / "Set5"), tmp_path / "b.sqlite")
    assert by_name["computed"] == by_path["computed"] == 5  # two stores: both computed
    assert by_name["mean"]["psnr"] == pytest.approx(28.42, abs=0.05)  # the published x4
    assert by_name["mean"] == by_path["mean"]
    assert [r["key"] for r in by_name["rows"]] == [r["key"] for r in by_path["rows"]]
    assert by_name["cell_id"] == by_path["cell_id"]  # identity by content, not by name
    again = _eval(cli, "set5", tmp_path / "b.sqlite")  # any case; the path's cell resumed
    assert again["from_store"] == 5 and again["mean"] == by_path["mean"]
    assert data_digest("Set5") == data_digest(str(data_root / "Set5"))


@needs_shared
@pytest.mark.shared
def test_basicsr_lr_files_and_plain_hr_folder(cli, data_root: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ADVSR_DATA", str(data_root))
    basicsr = _eval(cli, "Set14", tmp_path / "s.sqlite")
    plain = _eval(cli, "urban100", tmp_path / "s.sqlite")
    # the LRbicx4 files were made as the HR folder makes its LR: the same numbers, but
    # read from other files, so other cells
    assert basicsr["computed"] == plain["computed"] == 5
    assert basicsr["mean"]["psnr"] == pytest.approx(plain["mean"]["psnr"], abs=1e-9)
    assert basicsr["cell_id"] != plain["cell_id"]
    ds = open_dataset("Set14", 4)
    assert ds.name == "Set14" and ds.kind == "paired-basicsr" and ds.lr_files
    assert ds.names() == list(SET5_NAMES)
    assert open_dataset("Urban100", 4).kind == "hr-folder"
    _one_line(
        cli("eval-sr", "--data", "Set14", "--scale", "3"),
        "Set14: no LR folder for scale 3",
        str(data_root / "Set14" / "LRbicx3"),
        "(found LRbicx2, LRbicx4)",
    )


def test_unknown_and_missing_sets_are_one_line(cli, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADVSR_DATA", raising=False)
    _one_line(cli("eval-sr", "--data", "Set6", "--scale", "4"), "did you mean 'Set5'")
    _one_line(cli("eval-sr", "--data", "Set5", "--scale", "4"), "$ADVSR_DATA is not set")
    monkeypatch.setenv("ADVSR_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "Manga109").mkdir(parents=True)  # there, but empty
    _one_line(
        cli("eval-sr", "--data", "manga109", "--scale", "4"),
        "dataset Manga109 not found",
        f"looked in: {tmp_path / 'data' / 'Manga109'} (holds no images in a known layout)",
    )
    with pytest.raises(DatasetNotFoundError, match=r"BSDS100\)") as err:
        open_dataset("BSD100", scale=2)
    assert isinstance(err.value, AdvsrError) and isinstance(err.value, DatasetError)
    with pytest.raises(DatasetNotFoundError):
        data_digest("B100")  # a cell's identity: refused the same way


def test_wrong_size_lr_file_is_refused_naming_it(cli, monkeypatch, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i, (h, w) in enumerate([(24, 36), (24, 24)]):
        _save(root / "BSDS100" / "GTmod12" / f"{i}.png", h, w, i)
        _save(root / "BSDS100" / "LRbicx2" / f"{i}.png", h // 2, w // 2, i + 5)
    _save(root / "BSDS100" / "LRbicx2" / "1.png", 6, 6)  # a x4 LR in the x2 folder
    monkeypatch.setenv("ADVSR_DATA", str(root))
    line = _one_line(
        cli("eval-sr", "--data", "B100", "--scale", "2"),
        str(root / "BSDS100" / "LRbicx2" / "1.png"),
        "fit scale 4",
    )
    assert line.startswith("advsr: error: B100: scale 2 does not match")


def test_plain_hr_folder_div2k_and_case(monkeypatch, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(2):
        _save(root / "set5" / f"{i}.png", 20, 16, i)  # HR images alone, any case
        _save(root / "DIV2K" / "DIV2K_valid_HR" / f"080{i}.png", 16, 12, i)
        _save(root / "DIV2K" / "DIV2K_valid_LR_bicubic" / "X2" / f"080{i}x2.png", 8, 6, i)
    _save(root / "DIV2K" / "DIV2K_train_HR" / "0001.png", 16, 16)  # not the valid set's
    monkeypatch.setenv("ADVSR_DATA", f"{tmp_path / 'none'}:{root}")  # the second root has it
    plain = open_dataset("SET5", 4)
    assert plain.kind == "hr-folder" and plain.names() == ["0", "1"] and plain.name == "Set5"
    by_path = open_dataset(root / "set5", 4)
    assert plain[1].lr.equal(by_path[1].lr) and plain[1].hr.shape == (1, 3, 20, 16)
    div2k = open_dataset("div2k_valid", 2)
    assert div2k.kind == "paired-basicsr" and div2k.names() == ["0800", "0801"]
    kind, files = data_files("DIV2K-valid")
    assert kind == "folder" and [n for n, _ in files] == [
        "DIV2K_valid_HR/0800.png",
        "DIV2K_valid_HR/0801.png",
        "DIV2K_valid_LR_bicubic/X2/0800x2.png",
        "DIV2K_valid_LR_bicubic/X2/0801x2.png",
    ]  # the files read, not DIV2K_train_HR
    shutil.rmtree(root / "DIV2K" / "DIV2K_valid_HR")
    with pytest.raises(DatasetNotFoundError, match="looked in"):
        open_dataset("DIV2K-valid", 2)  # a DIV2K folder without the valid set


def test_a_folder_named_like_a_set_is_a_path_when_the_set_is_absent(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADVSR_DATA", raising=False)
    _save(tmp_path / "Set14" / "a.png", 16, 16)
    ds = open_dataset("Set14", 2)  # ./Set14, as before named sets existed
    assert ds.kind == "hr-folder" and ds.name == "Set14"
    assert data_digest("Set14") == data_digest(str(tmp_path / "Set14"))
