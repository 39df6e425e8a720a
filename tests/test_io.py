"""Image reading/writing: formats, modes, bit depths, corrupt files, explicit batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image

from advsr.errors import ImageReadError, InputError, ShapeError
from advsr.io import (
    array_to_image,
    image_to_array,
    list_images,
    read_image,
    stack_images,
    write_image,
)


def _rgb(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "tiff"])
def test_lossless_formats_roundtrip_exactly(tmp_path: Path, ext: str) -> None:
    a = _rgb()
    Image.fromarray(a).save(tmp_path / f"x.{ext}")
    x = read_image(tmp_path / f"x.{ext}")
    assert x.shape == (1, 3, 6, 5) and x.dtype == torch.float32
    assert np.array_equal(image_to_array(x), a)


def test_jpeg_reads_close(tmp_path: Path) -> None:
    a = np.full((16, 16, 3), 120, np.uint8)
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    x = read_image(tmp_path / "x.jpg")
    assert x.shape == (1, 3, 16, 16)
    assert (x * 255 - 120).abs().max() <= 2


def test_gray_rgba_palette(tmp_path: Path) -> None:
    g = np.arange(30, dtype=np.uint8).reshape(5, 6)
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    x = read_image(tmp_path / "g.png")
    assert x.shape == (1, 3, 5, 6)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert torch.allclose(x[0, 0] * 255, torch.from_numpy(g).float())
    rgba = np.dstack([_rgb(5, 6), np.zeros((5, 6), np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert np.array_equal(image_to_array(read_image(tmp_path / "a.png")), rgba[..., :3])
    Image.fromarray(_rgb(5, 6)).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (1, 3, 5, 6)


def test_16bit_png_and_tiff_keep_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    png.from_array(a.reshape(5, -1), "RGB;16").save(str(tmp_path / "c16.png"))
    x = read_image(tmp_path / "c16.png")
    assert torch.allclose(x[0].permute(1, 2, 0).double(), torch.from_numpy(a / 65535.0), atol=1e-7)
    g = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    png.from_array(g, "L;16").save(str(tmp_path / "g16.png"))
    y = read_image(tmp_path / "g16.png")
    assert torch.allclose(y[0, 0].double(), torch.from_numpy(g / 65535.0), atol=1e-7)
    tifffile.imwrite(tmp_path / "c16.tif", a)
    z = read_image(tmp_path / "c16.tif")
    assert torch.allclose(z, x)
    write_image(tmp_path / "out16.png", x, bits=16)
    assert torch.allclose(read_image(tmp_path / "out16.png"), x, atol=1e-7)


def test_write_png_roundtrip_and_errors(tmp_path: Path) -> None:
    x = torch.rand(1, 3, 9, 4, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "sub" / "x.png", x)
    y = read_image(tmp_path / "sub" / "x.png")
    assert (y - x).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(InputError):
        write_image(tmp_path / "x.jpg", x)
    with pytest.raises(InputError):
        write_image(tmp_path / "sub" / "x.png", x, overwrite=False)
    with pytest.raises(ShapeError):
        write_image(tmp_path / "two.png", torch.rand(2, 3, 4, 4))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such image"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)
    (tmp_path / "t.png").write_text("this is not an image")
    with pytest.raises(ImageReadError, match="not a readable image"):
        read_image(tmp_path / "t.png")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"truncated|corrupt"):
        read_image(tmp_path / "cut.png")


def test_float_tiff(tmp_path: Path) -> None:
    a = np.random.default_rng(2).random((4, 6)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", a)
    x = read_image(tmp_path / "f.tif")
    assert torch.allclose(x[0, 1], torch.from_numpy(a))
    tifffile.imwrite(tmp_path / "big.tif", a * 255)
    with pytest.raises(ImageReadError, match=r"\[0, 1\]"):
        read_image(tmp_path / "big.tif")


def test_array_conversions() -> None:
    assert array_to_image(np.zeros((4, 5), np.uint16)).shape == (1, 3, 4, 5)
    assert array_to_image(np.ones((4, 5, 2), np.float32)).shape == (1, 3, 4, 5)
    with pytest.raises(ShapeError):
        array_to_image(np.zeros((4, 5, 6)))
    with pytest.raises(ShapeError):
        array_to_image(np.zeros((4, 5), np.int16))
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        array_to_image(np.full((4, 5, 3), 255.0))
    assert array_to_image(np.full((2, 2), 1.0 + 1e-9)).max() == 1.0


def test_stack_policies() -> None:
    a, b = torch.rand(1, 3, 4, 6), torch.rand(2, 3, 6, 4)
    assert stack_images([a, a]).shape == (2, 3, 4, 6)
    with pytest.raises(ShapeError, match="different sizes"):
        stack_images([a, b])
    c = stack_images([a, b], policy="center-crop")
    assert c.shape == (3, 3, 4, 4)
    assert torch.equal(c[0], a[0, :, :, 1:5])
    p = stack_images([a, b], policy="pad")
    assert p.shape == (3, 3, 6, 6)
    assert torch.equal(p[0, :, :4, :6], a[0]) and p[0, :, 4:].abs().sum() == 0
    with pytest.raises(InputError):
        stack_images([])
    with pytest.raises(InputError):
        stack_images([a, b], policy="stretch")  # type: ignore[arg-type]


def test_list_images(tmp_path: Path) -> None:
    for n in ("b.png", "a.JPG", "c.txt"):
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
    with pytest.raises(ImageReadError):
        list_images(tmp_path / "nope")
