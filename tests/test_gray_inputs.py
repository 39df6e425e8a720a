"""Grayscale, alpha and 16-bit inputs: one notice per dataset, and ``--gray keep``."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image

from advsr.errors import AdvsrWarning
from advsr.io import image_info

SIDE = 32  # HR side: 16x16 LR at scale 2


def _rgb(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(path)


def _gray(path: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8), mode="L").save(path)


def _notices(caught: Iterable[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, AdvsrWarning)]


@pytest.fixture
def gray_folder(tmp_path: Path) -> Path:
    d = tmp_path / "Set3"
    d.mkdir()
    _rgb(d / "baby.png")
    _gray(d / "bridge.png")
    _rgb(d / "zebra.png", seed=2)
    return d


def test_header_says_what_read_image_converts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (4, 5, 2), dtype=np.uint8), mode="LA").save(
        tmp_path / "la.png"
    )
    png.from_array(rng.integers(0, 65536, (4, 10), dtype=np.uint16), "LA;16").save(
        str(tmp_path / "la16.png")
    )
    tifffile.imwrite(tmp_path / "g16.tif", rng.integers(0, 65536, (4, 5), dtype=np.uint16))
    got = {n: image_info(tmp_path / n) for n in ("la.png", "la16.png", "g16.tif")}
    assert all(i.gray for i in got.values())
    assert got["la.png"].alpha and got["la16.png"].alpha and not got["g16.tif"].alpha
    assert [got[n].bits for n in ("la.png", "la16.png", "g16.tif")] == [8, 16, 16]


def test_grayscale_folder_gives_one_notice(cli, gray_folder: Path) -> None:
    _gray(gray_folder / "lena.png", seed=3)
    res = cli("eval-sr", "--data", str(gray_folder), "--scale", "2")
    assert res.code == 0, res.err
    lines = res.err.splitlines()
    assert lines == [
        f"advsr: warning: 2 of 4 images in {gray_folder} are grayscale (bridge, lena): "
        "copied to 3 channels (R = G = B)"
    ], res.err
    # --gray is accepted by eval-sr and changes no number
    keep = cli("eval-sr", "--data", str(gray_folder), "--scale", "2", "--gray", "keep", "--json")
    rgb = cli("eval-sr", "--data", str(gray_folder), "--scale", "2", "--json")
    assert keep.code == 0 and rgb.code == 0, keep.err

    def scores(out: str) -> list[tuple[str, float, float]]:
        return [(r["image"], r["psnr"], r["ssim"]) for r in json.loads(out)["rows"]]

    assert json.loads(keep.out)["config"]["gray"] == "keep"
    assert scores(keep.out) == scores(rgb.out)


def test_alpha_and_16bit_notices(cli, tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    _rgb(d / "plain.png")
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8), mode="RGBA").save(
        d / "logo.png"
    )
    rgb16 = rng.integers(0, 65536, (SIDE, SIDE, 3), dtype=np.uint16)
    png.from_array(rgb16.reshape(SIDE, -1), "RGB;16").save(str(d / "deep.png"))
    tifffile.imwrite(d / "scan.tif", rgb16)
    res = cli("eval-sr", "--data", str(d), "--scale", "2")
    assert res.code == 0, res.err
    assert res.err.splitlines() == [
        f"advsr: warning: 1 of 4 images in {d} has an alpha channel (logo): alpha dropped, "
        "not composited: transparent pixels keep their stored colour",
        f"advsr: warning: 2 of 4 images in {d} are 16-bit (deep, scan): read at 16 bits "
        "(value / 65535, float32, not rounded); the LR made from it is rounded to 8 bits, "
        "the HR keeps 16-bit precision; the SR output is rounded to 8 bits before scoring "
        "(unless --float)",
    ], res.err


def test_labelled_folder_notice(tmp_path: Path) -> None:
    from advsr.data.labelled import open_labelled
    from advsr.engine.context import Context

    _rgb(tmp_path / "cat_3.png")
    _gray(tmp_path / "dog_5.png")
    with pytest.warns(AdvsrWarning) as caught:
        data = open_labelled(tmp_path)
    assert data.x.shape == (2, 3, SIDE, SIDE)
    assert _notices(caught) == [
        f"1 of 2 images in {tmp_path} is grayscale (dog_5): copied to 3 channels; the attack "
        "perturbs each channel, so its adversarial image need not stay gray"
    ]
    ctx = Context()  # a run warns once per dataset, whichever views it loads
    with warnings.catch_warnings(record=True) as caught2:
        warnings.simplefilter("always")
        ctx.labelled(str(tmp_path), None, None)
        ctx.labelled(str(tmp_path), None, None)
    assert _notices(caught2) == list(data.notices)


def test_sr_notice_once_per_run_and_policy(gray_folder: Path) -> None:
    from advsr.engine.context import Context

    ctx = Context()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx.sr_dataset(str(gray_folder), 2, None, use="attack-sr")
        ctx.sr_dataset(str(gray_folder), 4, None, use="attack-sr")  # another scale: no repeat
        ctx.sr_dataset(str(gray_folder), 2, None, use="attack-sr", gray="keep")
    assert _notices(caught) == [
        f"1 of 3 images in {gray_folder} is grayscale (bridge): copied to 3 channels; the "
        "attack perturbs each channel, so its adversarial image need not stay gray "
        "(--gray keep attacks the Y channel only)",
        f"1 of 3 images in {gray_folder} is grayscale (bridge): copied to 3 channels and kept "
        "gray: --gray keep attacks it through its gray projection (one perturbation shared by "
        "R, G and B, which changes Y only)",
    ]


def test_attack_sr_notice_names_the_option(cli, gray_folder: Path) -> None:
    res = cli("attack-sr", "--data", str(gray_folder), "--scale", "2", "--steps", "1")
    assert res.code == 0, res.err
    assert res.err.splitlines() == [
        f"advsr: warning: 1 of 3 images in {gray_folder} is grayscale (bridge): copied to 3 "
        "channels; the attack perturbs each channel, so its adversarial image need not stay "
        "gray (--gray keep attacks the Y channel only)"
    ], res.err


def _attacked(folder: Path, gray: str) -> dict[str, np.ndarray]:
    """The stored attacked LR figures (8-bit RGB) of a random-start basic attack."""
    from advsr.engine.store import ResultStore
    from advsr.experiments.attack_sr import attack_sr

    store = ResultStore(":memory:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AdvsrWarning)
        cfg = {"model": "bicubic", "data": str(folder), "scale": 2, "steps": 2, "gray": gray,
               "random_start": True, "show": ["baby", "bridge"]}  # fmt: skip
        run = attack_sr(cfg, store, progress=False)
    assert all(r["linf"] <= 8 / 255 + 1e-6 for r in run.rows)
    return {
        name.split(".")[0]: np.asarray(Image.open(io.BytesIO(data)))
        for name, (_, data) in store.artifacts(run.cell_id).items()
        if name.endswith(":lr_attacked.png")
    }


def _is_gray(a: np.ndarray) -> bool:
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


def test_gray_keep_attacks_a_gray_image_as_gray(gray_folder: Path) -> None:
    keep = _attacked(gray_folder, "keep")
    assert _is_gray(keep["bridge"]) and not _is_gray(keep["baby"])  # colour unaffected
    rgb = _attacked(gray_folder, "rgb")
    assert not _is_gray(rgb["bridge"])
    assert np.array_equal(rgb["baby"], keep["baby"])


def test_gray_projection_is_exact_on_gray_images() -> None:
    from advsr.experiments.attack_sr import gray_projection, is_gray

    g = torch.rand(2, 1, 9, 7, generator=torch.Generator().manual_seed(0)).repeat(1, 3, 1, 1)
    assert is_gray(g) and torch.equal(gray_projection(g), g)
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    p = gray_projection(x)
    assert is_gray(p) and not is_gray(x)
    assert torch.allclose(p[:, 0], x.mean(dim=1), atol=1e-7)


@pytest.mark.parametrize("experiment", ["attack-sr", "eval-sr"])
def test_default_identity_unchanged(experiment: str) -> None:
    from advsr.engine.context import Context
    from advsr.engine.plan import plan_cells
    from advsr.engine.store import cell_id_of

    base = {"data": "samples", "scale": 2, "hr_crop": 32}
    ids = {}
    for label, extra in (("plain", {}), ("rgb", {"gray": "rgb"}), ("keep", {"gray": "keep"})):
        ((_, plan),) = plan_cells([(experiment, {**base, **extra})], Context())
        ids[label] = cell_id_of(experiment, plan.identity)
        assert ("gray" in plan.identity) == (label == "keep")
    assert ids["plain"] == ids["rgb"] != ids["keep"]
