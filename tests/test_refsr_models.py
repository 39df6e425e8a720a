"""RefSR models: contract, search-and-transfer against naive loops, errors, VGG19 loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advsr.errors import InputError, ModelLoadError, ShapeError, UnknownNameError
from advsr.imaging.resize import imresize
from advsr.models.refsr import REFSR_MODELS, create_refsr_model, load_vgg19_features
from advsr.models.refsr.simple import CorrRefSR, global_soft_align, local_soft_align
from advsr.models.refsr.ttsr import LTE, TTSR, relevance, search_transfer, transfer, vgg19_features

NAMES = REFSR_MODELS.names()


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions run ~100x slower with intra-op threads on the shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny(name: str, scale: int = 4, **extra: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_refsr_model(name, scale, **{**REFSR_MODELS.get(name).tiny, **extra})


def _pair(n: int = 2, h: int = 12, s: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.rand(n, 3, h, h, generator=g), torch.rand(n, 3, s * h, s * h, generator=g)


@pytest.mark.parametrize("name", NAMES)
def test_contract_eval_and_batch(name: str) -> None:
    model = _tiny(name)
    assert not model.training
    lr, ref = _pair()
    y = model(lr, ref)
    assert y.shape == (2, 3, 48, 48) and y.dtype == torch.float32
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert not model.training
    for i in range(2):  # batched equals per image
        torch.testing.assert_close(model(lr[i : i + 1], ref[i : i + 1]), y[i : i + 1])
    assert not torch.equal(model(lr, ref.flip(0)), y)  # the reference matters


@pytest.mark.parametrize("name", NAMES)
def test_train_mode_gradients_reach_every_parameter(name: str) -> None:
    model = _tiny(name).train()
    lr, ref = _pair()
    lr.requires_grad_(True)
    ref.requires_grad_(True)
    y = model(lr, ref)
    assert model.training and y.shape == (2, 3, 48, 48) and torch.isfinite(y).all()
    F.l1_loss(y, torch.rand(y.shape, generator=_gen(3))).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"
    assert lr.grad is not None and lr.grad.abs().sum() > 0
    assert ref.grad is not None and ref.grad.abs().sum() > 0


def _naive_relevance(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop over query and key positions: max over keys of the normalised 3x3 patch product."""
    qp, kp = F.pad(q, (1, 1, 1, 1)), F.pad(k, (1, 1, 1, 1))
    n, _, h, w = q.shape
    hk, wk = k.shape[2:]
    conf = torch.empty(n, h * w, dtype=torch.float64)
    idx = torch.empty(n, h * w, dtype=torch.int64)
    for b in range(n):
        keys = torch.stack(
            [kp[b, :, y : y + 3, x : x + 3].flatten() for y in range(hk) for x in range(wk)]
        ).double()
        keys = keys / keys.norm(dim=1, keepdim=True)
        for y in range(h):
            for x in range(w):
                v = qp[b, :, y : y + 3, x : x + 3].flatten().double()
                r = keys @ (v / v.norm())
                conf[b, y * w + x], idx[b, y * w + x] = r.max(), r.argmax()
    return conf, idx


@pytest.mark.parametrize("chunk", [None, 7])
def test_soft_attention_equals_naive_max_inner_product(chunk: int | None) -> None:
    g = _gen(5)
    q, k = torch.rand(2, 3, 4, 5, generator=g), torch.rand(2, 3, 6, 3, generator=g)
    conf, idx = relevance(q, k, chunk_size=chunk)
    ref_conf, ref_idx = _naive_relevance(q, k)
    assert conf.shape == idx.shape == (2, 20)
    torch.testing.assert_close(conf.double(), ref_conf, atol=1e-6, rtol=0)
    assert torch.equal(idx, ref_idx)


def test_hard_attention_finds_and_transfers_exact_copy() -> None:
    g = _gen(7)
    h, w, oy, ox = 5, 6, 3, 2
    key = torch.rand(1, 4, 10, 9, generator=g)  # Ref features (level 3)
    query = key[:, :, oy : oy + h, ox : ox + w].clone()  # LR region copied from Ref
    v2 = torch.rand(1, 2, 20, 18, generator=g)  # Ref features at level 2 (2x)
    s, (t1, t2), idx = search_transfer(query, key, (key, v2), (1, 2))
    grid = idx.view(h, w)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inner = (slice(1, h - 1), slice(1, w - 1))  # border patches see zero padding
    assert torch.equal(grid[inner], ((ys + oy) * 9 + xs + ox)[inner])
    torch.testing.assert_close(s[0, 0][inner], torch.ones(h - 2, w - 2))
    assert (s <= 1 + 1e-6).all()
    torch.testing.assert_close(t1[:, :, 2:-2, 2:-2], query[:, :, 2:-2, 2:-2])
    # level 2: the 2x region of the copied location, away from border-affected patches
    want2 = v2[:, :, 2 * oy : 2 * (oy + h), 2 * ox : 2 * (ox + w)]
    torch.testing.assert_close(t2[:, :, 4:-4, 4:-4], want2[:, :, 4:-4, 4:-4])


def _naive_transfer(value: torch.Tensor, index: torch.Tensor, h: int, w: int, f: int, wk: int):
    """Place the (3f)^2 patch around each chosen key at each query, average the overlaps."""
    vp = F.pad(value, (f, f, f, f))
    out = torch.zeros(value.shape[0], value.shape[1], (h + 2) * f, (w + 2) * f)
    cnt = torch.zeros_like(out)
    for b in range(value.shape[0]):
        for i in range(h * w):
            y, x = divmod(i, w)
            ky, kx = divmod(int(index[b, i]), wk)
            out[b, :, y * f : y * f + 3 * f, x * f : x * f + 3 * f] += vp[
                b, :, ky * f : ky * f + 3 * f, kx * f : kx * f + 3 * f
            ]
            cnt[b, :, y * f : y * f + 3 * f, x * f : x * f + 3 * f] += 1
    return (out / cnt)[:, :, f:-f, f:-f], out[:, :, f:-f, f:-f] / 9


@pytest.mark.parametrize("f", [1, 2, 4])
def test_transfer_matches_naive_fold(f: int) -> None:
    g = _gen(11)
    h, w, hk, wk = 3, 4, 5, 2
    value = torch.rand(2, 3, hk * f, wk * f, generator=g)
    index = torch.randint(0, hk * wk, (2, h * w), generator=g)
    want_count, want_nine = _naive_transfer(value, index, h, w, f, wk)
    torch.testing.assert_close(transfer(value, index, (h, w), f), want_count)
    torch.testing.assert_close(transfer(value, index, (h, w), f, "nine"), want_nine)


def test_ttsr_search_with_hr_as_ref_is_identity() -> None:
    # Ref = HR and LR = bicubic(HR, 1/4): Ref-down-up equals LR-up, so every query matches
    # its own position (up to ties on flat/zero features)
    torch.manual_seed(0)
    model = TTSR(4, n_feats=8, n_resblocks=1, level_blocks=(1, 1, 1), lte_channels=(8, 16, 32))
    hr = torch.rand(1, 3, 48, 48, generator=_gen(2))
    s, _, idx = model.search(imresize(hr, 1 / 4), hr)
    hit = (idx == torch.arange(144)).float().mean()
    assert hit > 0.95, float(hit)
    assert torch.allclose(s.flatten()[idx[0] == torch.arange(144)], torch.tensor(1.0), atol=1e-5)


def _naive_local(q, k, v, win, temp):
    n, _, h, w = q.shape
    out = torch.zeros(n, v.shape[1], h, w, dtype=torch.float64)
    qn, kn = F.normalize(q.double(), dim=1), F.normalize(k.double(), dim=1)
    r = win // 2
    for b in range(n):
        for y in range(h):
            for x in range(w):
                cand = [(y + dy, x + dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
                cand = [(a, c) for a, c in cand if 0 <= a < h and 0 <= c < w]
                cost = torch.stack([(qn[b, :, y, x] * kn[b, :, a, c]).sum() for a, c in cand])
                wts = (cost / temp).softmax(0)
                out[b, :, y, x] = sum(
                    wt * v[b, :, a, c].double() for wt, (a, c) in zip(wts, cand, strict=True)
                )
    return out


def test_local_and_global_soft_align_match_naive() -> None:
    g = _gen(13)
    q, k = torch.rand(2, 4, 4, 5, generator=g), torch.rand(2, 4, 4, 5, generator=g)
    v = torch.rand(2, 3, 4, 5, generator=g)
    got = local_soft_align(q, k, v, 3, 0.2)
    torch.testing.assert_close(got.double(), _naive_local(q, k, v, 3, 0.2), atol=1e-6, rtol=0)
    # a window covering the whole image is the global attention
    torch.testing.assert_close(local_soft_align(q, k, v, 9, 0.2), global_soft_align(q, k, v, 0.2))


def test_corr_refsr_global_and_other_scales() -> None:
    torch.manual_seed(0)
    m = CorrRefSR(2, n_feats=8, enc_blocks=1, n_resblocks=1, matching="global").eval()
    lr, ref = _pair(1, 6, 2)
    assert m(lr, ref).shape == (1, 3, 12, 12)
    assert m(lr, torch.rand(1, 3, 8, 10)).shape == (1, 3, 12, 12)  # any multiple of 2
    m3 = _tiny("corr-refsr", 3)
    lr, ref = _pair(1, 5, 3)
    assert m3(lr, ref).shape == (1, 3, 15, 15)


def test_ttsr_accepts_ref_of_other_size_and_nine_overlap() -> None:
    model = _tiny("ttsr", overlap="nine", chunk_size=5, global_residual=True)
    lr = torch.rand(1, 3, 6, 7, generator=_gen(1))
    y = model(lr, torch.rand(1, 3, 20, 16, generator=_gen(2)))
    assert y.shape == (1, 3, 24, 28) and torch.isfinite(y).all()


def test_errors() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'ttsr'"):
        create_refsr_model("tsr")
    with pytest.raises(InputError, match="no architecture option 'width'"):
        create_refsr_model("ttsr", width=3)
    with pytest.raises(InputError, match="does not support scale 2"):
        create_refsr_model("ttsr", 2)
    with pytest.raises(InputError, match="does not support scale 8"):
        create_refsr_model("corr-refsr", 8)
    with pytest.raises(InputError, match="positive integer"):
        create_refsr_model("ttsr", 0)
    with pytest.raises(InputError, match="odd"):
        create_refsr_model("corr-refsr", window=4)
    with pytest.raises(InputError, match="3 entries"):
        create_refsr_model("ttsr", level_blocks=(1, 1))
    lr = torch.rand(1, 3, 12, 12)
    ttsr, corr = _tiny("ttsr"), _tiny("corr-refsr")
    for model, ref in [(ttsr, torch.rand(1, 3, 47, 48)), (corr, torch.rand(1, 3, 44, 48))]:
        with pytest.raises(ShapeError) as info:
            model(lr, ref)
        assert "\n" not in str(info.value) and "ref" in str(info.value)
    with pytest.raises(ShapeError, match="batch sizes differ"):
        ttsr(lr, torch.rand(2, 3, 48, 48))
    with pytest.raises(ShapeError, match="ref must have shape"):
        corr(lr, torch.rand(1, 1, 48, 48))


def test_load_vgg19_features(tmp_path) -> None:
    g = _gen(17)
    sd = {
        f"features.{k}": torch.randn(v.shape, generator=g)
        for k, v in vgg19_features().state_dict().items()
    }
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    path = tmp_path / "vgg19.pth"
    torch.save(sd, path)
    feats = load_vgg19_features(path)
    assert not feats.training and not any(p.requires_grad for p in feats.parameters())
    assert torch.equal(feats[34].weight, sd["features.34.weight"])
    assert torch.equal(feats[0].bias, sd["features.0.bias"])
    lte = LTE()
    lte.init_from_vgg19(feats)
    x = torch.rand(1, 3, 8, 8, generator=g)
    # the LTE's level 3 is VGG19 up to relu3_1 (index 11) on the normalised input
    torch.testing.assert_close(lte(x)[2], feats[:12]((x - lte.mean) / lte.std))
    with pytest.raises(InputError, match="differ from VGG19"):
        LTE((4, 8, 8)).init_from_vgg19(feats)
    sd["features.2.weight"] = torch.zeros(3, 3, 3, 3)
    del sd["features.34.bias"]
    torch.save(sd, path)
    with pytest.raises(ModelLoadError, match=r"missing: 34\.bias.*shapes: 2\.weight"):
        load_vgg19_features(path)
