"""Tests of the BadRefSR reference-image triggers (advsr.backdoor.triggers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advsr.backdoor import (
    TRIGGERS,
    BadNets,
    Blend,
    Color,
    Filter1977,
    Refool,
    WaNet,
    create_trigger,
    stealthiness,
)
from advsr.backdoor.triggers import filter_1977
from advsr.errors import InputError, ShapeError, UnknownNameError
from advsr.imaging.resize import imresize


@pytest.fixture
def ref() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 12, generator=g)
    return imresize(x, size=(48, 48)).clamp(0, 1)  # smooth-ish natural-like content


@pytest.mark.parametrize("name", TRIGGERS.names())
def test_shape_range_and_determinism(name: str, ref: torch.Tensor) -> None:
    trig = create_trigger(name)
    out = trig(ref, torch.Generator().manual_seed(1))
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, ref)
    again = create_trigger(name)(ref, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert create_trigger(name)(ref.double()).dtype == torch.float64


def test_badnets_changes_only_corner(ref: torch.Tensor) -> None:
    out = BadNets(size=0.25, margin=2)(ref)  # 12 px square, 2 px from the border
    changed = (out != ref).any(dim=1)
    mask = torch.zeros(48, 48, dtype=torch.bool)
    mask[34:46, 34:46] = True
    assert torch.equal(out[..., 34:46, 34:46], torch.ones(2, 3, 12, 12))
    assert not changed[:, ~mask].any()
    assert torch.equal(BadNets(size=5)(ref)[..., 43:, 43:], torch.ones(2, 3, 5, 5))


def test_blend_formula(ref: torch.Tensor) -> None:
    key = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    out = Blend(alpha=0.05, key=key)(ref)
    torch.testing.assert_close(out, 0.95 * ref + 0.05 * key, atol=1e-6, rtol=0)
    default = Blend()
    k = default.key_for(ref)
    assert k.shape == (1, 3, 48, 48)
    torch.testing.assert_close(default(ref), 0.95 * ref + 0.05 * k, atol=1e-6, rtol=0)


def test_blend_key_from_path(tmp_path, ref: torch.Tensor) -> None:
    from advsr.io import write_image

    key = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(4))
    p = tmp_path / "key.png"
    write_image(p, key)
    got = Blend(alpha=0.5, key=str(p)).key_for(ref)
    from advsr.io import read_image

    torch.testing.assert_close(got, imresize(read_image(p), size=(48, 48)).clamp(0, 1))
    with pytest.raises(InputError):
        Blend(key=str(tmp_path / "missing.png"))


def test_wanet_identity_and_fixed_field(ref: torch.Tensor) -> None:
    torch.testing.assert_close(WaNet(s=0.0)(ref), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(WaNet(s=0.0)(ref.double()), ref.double(), atol=1e-12, rtol=0)
    a, b = WaNet(seed=1), WaNet(seed=2)
    assert not torch.equal(a(ref), b(ref))
    # same field for every image: warping a stacked batch equals warping each image
    torch.testing.assert_close(a(ref)[1:], a(ref[1:]), atol=1e-6, rtol=0)
    # reference formula: offsets of mean |.| = 1 scaled by s / H
    flow = a.flow(48, 48, ref.device, torch.float64)
    ident = WaNet(s=0.0).flow(48, 48, ref.device, torch.float64)
    mean_off = (flow - ident).abs().mean().item() * 48 / a.s
    assert 0.5 < mean_off < 1.5
    # stronger warps move pixels more
    e1 = (WaNet(s=0.5)(ref) - ref).abs().mean()
    e2 = (WaNet(s=4.0)(ref) - ref).abs().mean()
    assert 0 < e1 < e2


def test_color_uniform_shift(ref: torch.Tensor) -> None:
    off = torch.tensor([0.1, -0.05, 0.07]).view(1, 3, 1, 1)
    out = Color(offset=(0.1, -0.05, 0.07))(ref)
    shifted = ref + off
    inside = (shifted > 0) & (shifted < 1)
    torch.testing.assert_close((out - ref)[inside], (off.expand_as(ref))[inside], atol=1e-6, rtol=0)
    assert torch.equal(out[~inside], shifted.clamp(0, 1)[~inside])
    assert inside.float().mean() > 0.8


def _muldiv255(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return (a.astype(np.int64) * b) // 255  # PIL ImageChops multiply (floor)


def _pilgram_1977_u8(img: np.ndarray) -> np.ndarray:
    """numpy port of pilgram 2.0 ``_1977`` with its 8-bit steps (bit-exact vs pilgram)."""
    x = img.astype(np.int64)
    c = np.array([243, 106, 188])
    a = round(0.3 * 255)  # 76: Python rounds half to even, as pilgram.util.fill
    scr = 255 - _muldiv255(255 - x, 255 - c)
    y = np.clip(_muldiv255(scr, a) + _muldiv255(x, 255 - a), 0, 255)
    y = np.clip([round(v * 1.1 - 127.5 * 1.1 + 127.5) for v in range(256)], 0, 255)[y]
    y = np.clip([round(v * 1.1) for v in range(256)], 0, 255)[y]
    s = 1.3
    m = np.array(
        [
            [0.213 + 0.787 * s, 0.715 - 0.715 * s, 0.072 - 0.072 * s],
            [0.213 - 0.213 * s, 0.715 + 0.285 * s, 0.072 - 0.072 * s],
            [0.213 - 0.213 * s, 0.715 - 0.715 * s, 0.072 + 0.928 * s],
        ],
        dtype=np.float32,
    )
    v = np.einsum("oc,hwc->hwo", m, y.astype(np.float32)) + np.float32(0.5)
    return np.clip(np.floor(v), 0, 255).astype(np.uint8)


def test_filter_matches_pilgram_port() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    want = _pilgram_1977_u8(img).astype(np.float64)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    got = filter_1977(x)[0].permute(1, 2, 0).numpy() * 255
    diff = np.abs(got - want)
    # float port vs 8-bit rounding at each of pilgram's steps: at most 4 levels, ~0.9 mean
    assert diff.max() <= 4.5 and diff.mean() <= 1.2
    torch.testing.assert_close(Filter1977(strength=0.0)(x), x)
    torch.testing.assert_close(Filter1977()(x), filter_1977(x))


def _numpy_refool_ghost(t: np.ndarray, r: np.ndarray, a: float, dy: int, dx: int, g: float):
    tl, rl = t**2.2, r**2.2
    r1 = np.pad(rl, ((0, 0), (0, dy), (0, dx)))
    r2 = np.pad(rl, ((0, 0), (dy, 0), (dx, 0)))
    ghost = (g * r1 + (1 - g) * r2)[:, dy:-dy, dx:-dx]
    return ghost, tl, rl


def test_refool_ghost_formula(ref: torch.Tensor) -> None:
    r = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(5)).double()
    x = ref.double()
    trig = Refool(mode="ghost", alpha_t=0.7, offset=(3, 4), ghost_alpha=0.4, reflection=r)
    ghost, tl, _ = _numpy_refool_ghost(x[0].numpy(), r[0].numpy(), 0.7, 3, 4, 0.4)
    ghost_t = imresize(torch.from_numpy(ghost)[None], size=(48, 48))[0].numpy()
    want = np.clip((0.7 * tl + 0.3 * ghost_t).clip(0, None) ** (1 / 2.2), 0, 1)
    np.testing.assert_allclose(trig(x)[0].numpy(), want, atol=1e-10)
    # alpha_t = 1 leaves the Ref unchanged (up to the gamma round trip)
    torch.testing.assert_close(Refool(alpha_t=1.0, reflection=r)(x), x, atol=1e-10, rtol=0)


def test_refool_blur(ref: torch.Tensor) -> None:
    from scipy.ndimage import gaussian_filter

    from advsr.backdoor.triggers import _gaussian_blur

    r = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(6)).double()
    sigma = 2.0
    got = _gaussian_blur(r, sigma)[0].numpy()
    # kernel 2 * ceil(2 sigma) + 1 = 9 -> truncate = 4 / sigma; cv2's reflect-101 = 'mirror'
    want = gaussian_filter(r[0].numpy(), sigma=(0, sigma, sigma), mode="mirror", truncate=2.0)
    np.testing.assert_allclose(got, want, atol=1e-12)
    out = Refool(mode="blur", sigma=sigma, reflection=r)(ref)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert not torch.equal(out, ref)


def test_stealthiness_decreases_with_strength(ref: torch.Tensor) -> None:
    results = [stealthiness(Blend(alpha=a), ref) for a in (0.02, 0.05, 0.2)]
    for r in results:
        assert r["psnr"].shape == (2,) and torch.isfinite(r["psnr"]).all()
        assert torch.isfinite(r["ssim"]).all()
    for lo, hi in zip(results[1:], results[:-1], strict=True):
        assert (lo["psnr"] < hi["psnr"]).all() and (lo["ssim"] < hi["ssim"]).all()
    wa = [stealthiness(WaNet(s=s), ref)["psnr"] for s in (0.5, 2.0)]
    assert (wa[1] < wa[0]).all()
    same = stealthiness(Color(offset=(0.0, 0.0, 0.0)), ref)
    assert torch.isinf(same["psnr"]).all() and torch.allclose(same["ssim"], torch.ones(2).double())


def test_errors(ref: torch.Tensor) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'wanet'"):
        create_trigger("wanett")
    with pytest.raises(InputError, match="did you mean 'alpha'"):
        create_trigger("blend", alpah=0.1)
    bad: list[tuple[str, dict[str, object]]] = [
        ("blend", {"alpha": 1.5}),
        ("badnets", {"size": 0}),
        ("badnets", {"size": 1.5}),
        ("badnets", {"margin": -1}),
        ("color", {"offset": (0.1, 0.2)}),
        ("color", {"offset": (2.0, 0.0, 0.0)}),
        ("wanet", {"k": 1}),
        ("wanet", {"s": -1.0}),
        ("filter", {"strength": "x"}),
        ("refool", {"mode": "mirror"}),
        ("refool", {"alpha_t": 0.0}),
        ("refool", {"offset": (0, 2)}),
    ]
    for name, settings in bad:
        with pytest.raises(InputError):
            create_trigger(name, **settings)
    with pytest.raises(ShapeError):
        BadNets()(torch.rand(3, 8, 8))
    with pytest.raises(InputError):
        BadNets(size=40, margin=10)(ref)
