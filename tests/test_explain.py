"""advsr.explain: SSIM maps, Grad-CAM / Grad-CAM++, perturbation-vs-saliency overlap.

References: skimage ``structural_similarity(full=True)`` and numpy ports of ``ssim_index.m``
for the maps; closed-form CAMs of a network whose head is global average pooling and a linear
layer; direct numpy counts for the overlap metrics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import structural_similarity
from torch import nn

from advsr.errors import InputError, ShapeError, UnknownNameError
from advsr.explain import (
    ClassActivationMap,
    SSIMMaps,
    block_ssim_maps,
    cam_layers,
    class_activation_map,
    confusion_counts,
    default_layer,
    distortion,
    gaussian_ssim_maps,
    get_layer,
    grad_cam,
    grad_cam_plus_plus,
    noise_mask,
    normalize_maps,
    overlap_curves,
    saliency_mask,
    ssim_maps,
)
from advsr.models.classifiers import Classifier, create_classifier
from advsr.models.classifiers.cifar_resnet import CifarResNet

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pair(seed: int, n: int = 2, h: int = 20, w: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)
    noise = 0.08 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)
    return x, (x + noise).clamp(0, 1)


def _skimage_maps(x: torch.Tensor, y: torch.Tensor, **kw: object) -> np.ndarray:
    """skimage's full SSIM map per image, channels first, on [0, 1] data (data_range=1)."""
    out = []
    for a, b in zip(x.numpy(), y.numpy(), strict=True):
        _, s = structural_similarity(b, a, data_range=1.0, channel_axis=0, full=True, **kw)
        out.append(s)
    return np.stack(out)


def _numpy_box_ssim(
    a: np.ndarray, b: np.ndarray, k: int, pad: tuple[int, int] | None
) -> np.ndarray:
    """Direct port of ssim_index.m with ``ones(k)/k^2``: explicit windows, population moments.

    ``pad=None`` keeps the valid windows; else the planes are padded (before, after) with
    numpy's ``symmetric`` mode first.
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a * 255.0, b * 255.0
    if pad is not None:
        widths = ((0, 0), (0, 0), pad, pad)
        a, b = np.pad(a, widths, mode="symmetric"), np.pad(b, widths, mode="symmetric")
    wa = sliding_window_view(a, (k, k), axis=(2, 3)).reshape(*a.shape[:2], -1, k * k)
    wb = sliding_window_view(b, (k, k), axis=(2, 3)).reshape(*b.shape[:2], -1, k * k)
    mu_a, mu_b = wa.mean(-1), wb.mean(-1)
    var_a = ((wa - mu_a[..., None]) ** 2).mean(-1)
    var_b = ((wb - mu_b[..., None]) ** 2).mean(-1)
    cov = ((wa - mu_a[..., None]) * (wb - mu_b[..., None])).mean(-1)
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    ho, wo = a.shape[2] - k + 1, a.shape[3] - k + 1
    return s.reshape(*a.shape[:2], ho, wo)


# ---------------------------------------------------------------- SSIM maps


def test_gaussian_maps_equal_skimage_full_map():
    x, y = _pair(0)
    got = gaussian_ssim_maps(x, y)
    ref = _skimage_maps(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert got.shape == (2, 3, 20, 23) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-6)
    assert float(got.min()) < 0.9  # the perturbation shows


@pytest.mark.parametrize("sample", [False, True])
def test_block_maps_odd_window_equal_skimage(sample):
    # skimage's uniform window must be odd: check the block code with a 7x7 window
    x, y = _pair(1)
    got = block_ssim_maps(x, y, window_size=7, sample_covariance=sample)
    ref = _skimage_maps(x, y, win_size=7, gaussian_weights=False, use_sample_covariance=sample)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("padding", "pad"), [("valid", None), ("same", (4, 3))])
def test_block_8x8_maps_equal_numpy_port(padding, pad):
    x, y = _pair(2, h=17, w=12)
    got = block_ssim_maps(x, y, padding=padding)
    ref = _numpy_box_ssim(x.numpy(), y.numpy(), 8, pad)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-10)


def test_block_sample_covariance_rescales_moments():
    x, y = _pair(3, h=12, w=12)
    pop = block_ssim_maps(x, y, padding="valid").numpy()
    smp = block_ssim_maps(x, y, padding="valid", sample_covariance=True).numpy()
    assert np.abs(pop - smp).max() > 1e-7  # the option changes the map
    # reference for the first window: ddof=1 moments from numpy
    a, b = x.numpy()[:, :, :8, :8] * 255, y.numpy()[:, :, :8, :8] * 255
    ma, mb = a.mean((2, 3)), b.mean((2, 3))
    va, vb = a.var((2, 3), ddof=1), b.var((2, 3), ddof=1)
    cov = ((a - ma[..., None, None]) * (b - mb[..., None, None])).sum((2, 3)) / 63
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ref = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    np.testing.assert_allclose(smp[:, :, 0, 0], ref, rtol=0, atol=1e-12)


def test_maps_identity_dispatch_and_module():
    x, y = _pair(4)
    for window in ("gaussian", "block"):
        m = ssim_maps(x, x, window=window)
        assert m.shape == x.shape and torch.allclose(m, torch.ones_like(m), atol=1e-12)
    assert torch.equal(ssim_maps(x, y, window="block"), block_ssim_maps(x, y))
    assert torch.equal(SSIMMaps()(x, y), gaussian_ssim_maps(x, y))
    mod = SSIMMaps("block", window_size=5, padding="valid", sample_covariance=True)
    ref = block_ssim_maps(x, y, window_size=5, padding="valid", sample_covariance=True)
    assert torch.equal(mod(x, y), ref)
    assert "block" in repr(mod)
    # float32 inputs give the same float64 map up to the input rounding
    got32 = gaussian_ssim_maps(x.float(), y.float())
    assert got32.dtype == torch.float64
    torch.testing.assert_close(got32, gaussian_ssim_maps(x, y), rtol=0, atol=1e-5)


def test_maps_errors():
    x, y = _pair(5)
    with pytest.raises(ShapeError, match="differ in shape"):
        ssim_maps(x, y[:, :, :10])
    with pytest.raises(ShapeError):
        ssim_maps(x[:, :1], y[:, :1])
    with pytest.raises(ShapeError, match="at least 8x8"):
        block_ssim_maps(x[..., :6, :6], y[..., :6, :6])
    with pytest.raises(InputError, match="padding"):
        block_ssim_maps(x, y, padding="full")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="odd"):
        gaussian_ssim_maps(x, y, window_size=8)
    with pytest.raises(InputError, match="sigma"):
        gaussian_ssim_maps(x, y, sigma=0)
    with pytest.raises(InputError, match="window"):
        ssim_maps(x, y, window="box")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="block window only"):
        SSIMMaps("gaussian", padding="valid")


# ---------------------------------------------------------------- CAMs


class GapNet(nn.Module):
    """Fixed conv features (ReLU), global average pooling, linear head: CAMs in closed form."""

    def __init__(self, channels: int = 5, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(channels, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def _images(n: int, h: int = 9, w: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.rand(
        n, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _closed_form(net: GapNet, x: torch.Tensor, target: np.ndarray | None, method: str, norm: bool):
    """Hand-derived CAM before normalisation.

    ``S_c = sum_k W_ck mean_ij A_kij + b_c`` so ``g_kij = W_ck / Z`` (``Z = h w``), constant
    in space. Grad-CAM: ``w_k = W_ck / Z``. Grad-CAM++: ``alpha_k = g^2 / (2 g^2 + s_k g^3)
    = Z / (2 Z + s_k W_ck)`` with ``s_k = sum_ij A_kij``, and ``w_k = sum_ij alpha_k
    ReLU(g) = Z ReLU(W_ck) / (2 Z + s_k W_ck)``; with the alphas divided by their spatial
    sum (``Z alpha_k``), ``w_k = ReLU(W_ck) / Z``.
    """
    with torch.no_grad():
        a = net.features(x).numpy()
    wmat, b = net.fc.weight.detach().numpy(), net.fc.bias.detach().numpy()
    z = a.shape[2] * a.shape[3]
    logits = a.mean((2, 3)) @ wmat.T + b
    c = logits.argmax(1) if target is None else target
    wc = wmat[c]  # (N, K)
    if method == "gradcam":
        weights = wc / z
    elif norm:
        weights = np.maximum(wc, 0) / z
    else:
        s = a.sum((2, 3))
        weights = z * np.maximum(wc, 0) / (2 * z + s * wc)
    return np.maximum(np.einsum("nk,nkhw->nhw", weights, a), 0)


@pytest.mark.parametrize(
    ("method", "norm"), [("gradcam", False), ("gradcam++", False), ("gradcam++", True)]
)
@pytest.mark.parametrize("given_target", [False, True])
def test_cam_equals_closed_form(method, norm, given_target):
    net = GapNet()
    x = _images(4)
    target = np.array([3, 0, 1, 2]) if given_target else None
    t = torch.as_tensor(target) if given_target else None
    raw = class_activation_map(
        net,
        x,
        "features",
        t,
        method=method,
        normalize_alphas=norm,
        resize=False,
        normalize=False,
    )
    ref = _closed_form(net, x, target, method, norm)
    assert raw.shape == (4, 9, 7)
    assert float(raw.amax(dim=(1, 2)).min()) > 0  # a non-trivial map for every image
    np.testing.assert_allclose(raw.numpy(), ref, rtol=1e-12, atol=1e-12)
    # the default post-processing: bilinear resize (align_corners=False), then min-max
    out = class_activation_map(net, x, "features", t, method=method, normalize_alphas=norm)
    up = F.interpolate(torch.from_numpy(ref)[:, None], size=(9, 7), mode="bilinear")[:, 0]
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(out, (up - lo) / (hi - lo), rtol=0, atol=1e-12)


def test_gradcam_plus_plus_differs_from_gradcam_and_resizes():
    net = GapNet(seed=1)
    x = _images(3, seed=1)
    a = grad_cam(net, x, "features")
    b = grad_cam_plus_plus(net, x, "features")
    c = grad_cam_plus_plus(net, x, "features", normalize_alphas=True)
    assert not torch.allclose(a, b, atol=1e-3) and not torch.allclose(b, c, atol=1e-3)
    for m in (a, b, c):
        assert float(m.min()) >= 0 and torch.allclose(m.amax(dim=(1, 2)), torch.ones(3).double())
    # upsampling a 4x4 feature map (stride-2 features) to 8x8 follows torch's bilinear rule
    net.features[0].stride = (2, 2)
    x8 = _images(2, h=8, w=8)
    raw = grad_cam(net, x8, "features", resize=False, normalize=False)
    assert raw.shape == (2, 4, 4)
    for corners in (False, True):
        up = F.interpolate(raw[:, None], size=(8, 8), mode="bilinear", align_corners=corners)
        got = grad_cam(net, x8, "features", normalize=False, align_corners=corners)
        torch.testing.assert_close(got, up[:, 0], rtol=0, atol=1e-14)
    # normalised after resizing: the map reaches exactly 1 (it need not before resizing)
    up = F.interpolate(raw[:, None], size=(8, 8), mode="bilinear")[:, 0]
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    got = grad_cam(net, x8, "features")
    torch.testing.assert_close(got, (up - lo) / (hi - lo), rtol=0, atol=1e-14)
    assert torch.equal(got.amax(dim=(1, 2)), torch.ones(2, dtype=got.dtype))


def test_all_zero_cam_normalises_to_zeros():
    net = GapNet()
    with torch.no_grad():
        net.fc.weight[0] = -net.fc.weight[0].abs()  # class 0 has no positive evidence
    cam = grad_cam_plus_plus(net, _images(2), "features", 0)
    assert torch.equal(cam, torch.zeros_like(cam))
    assert torch.equal(normalize_maps(torch.full((1, 2, 2), 3.0)), torch.zeros(1, 2, 2))


def test_inplace_relu_after_the_layer():
    # hooking the conv output when an inplace ReLU follows: the captured map is pre-ReLU
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).double()
    x = _images(2, seed=3)
    raw = grad_cam(net, x, "0", 1, resize=False, normalize=False)
    with torch.no_grad():
        a = net[0](x).numpy()
    w = net[4].weight.detach().numpy()[1]
    z = a.shape[2] * a.shape[3]
    weights = w[None] * (a > 0).mean((2, 3)) / z  # g = W_k 1[A > 0] / Z, averaged over ij
    ref = np.maximum(np.einsum("nk,nkhw->nhw", weights, a), 0)
    np.testing.assert_allclose(raw.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert (a < 0).any()  # the captured values are pre-ReLU


def test_batched_equals_per_image_and_state_restored():
    with torch.random.fork_rng():
        torch.manual_seed(0)  # fixed random weights, independent of the test order
        clf = create_classifier("resnet20-cifar10", bundled=False)
    clf.train()
    clf.net.layer1.eval()  # a mixed mode must come back as it was
    flags = {n: m.training for n, m in clf.named_modules()}
    stats = clf.net.bn1.running_mean.clone()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([1, 5, 9])
    batched = grad_cam_plus_plus(clf, x, "net.layer2", target, normalize=False)
    single = torch.cat(
        [
            grad_cam_plus_plus(clf, x[i : i + 1], "net.layer2", int(target[i]), normalize=False)
            for i in range(3)
        ]
    )
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-6)
    assert float(batched.amax()) > 0
    assert {n: m.training for n, m in clf.named_modules()} == flags
    assert torch.equal(clf.net.bn1.running_mean, stats)  # ran in eval mode
    assert all(p.grad is None for p in clf.parameters())
    assert all(not m._forward_hooks for m in clf.modules())


def test_predicted_class_is_the_default_target():
    net = GapNet(seed=2)
    x = _images(5, seed=2)
    with torch.no_grad():
        pred = net(x).argmax(1)
    torch.testing.assert_close(grad_cam(net, x, "features"), grad_cam(net, x, "features", pred))


def test_layer_errors():
    clf = create_classifier("resnet20-cifar10", bundled=False)
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(UnknownNameError, match=r"did you mean 'net\.layer3'") as info:
        grad_cam(clf, x, "layer3")
    assert isinstance(info.value, InputError)
    assert "4-D outputs: net.conv1" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UnknownNameError, match=r"did you mean 'net\.layer2'"):
        get_layer(clf, "net.layr2")
    with pytest.raises(InputError, match="4-D"):
        grad_cam(clf, x, "net.linear")
    with pytest.raises(InputError, match="non-empty"):
        get_layer(clf, "")
    # a classifier without that layer: the same error
    small = create_classifier("digits-cnn", bundled=False)
    with pytest.raises(UnknownNameError, match=r"net\.features"):
        grad_cam(small, x, "net.layer3")
    with pytest.raises(InputError, match=r"target classes must lie in \[0, 10\)"):
        grad_cam(clf, x, None, 10)
    with pytest.raises(InputError, match="integer class indices"):
        grad_cam(clf, x, None, torch.tensor([1.0, 2.0]))
    with pytest.raises(InputError, match="integer class indices"):
        grad_cam(clf, x, None, [1, 2, 3])
    with pytest.raises(InputError, match="method"):
        class_activation_map(clf, x, method="cam")  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        grad_cam(clf, x[:, :1])

    class Unused(GapNet):
        def __init__(self) -> None:
            super().__init__()
            self.spare = nn.Conv2d(3, 3, 1).double()

    with pytest.raises(InputError, match="not used"):
        grad_cam(Unused(), _images(1), "spare")
    with pytest.raises(InputError, match="logits"):
        grad_cam(nn.Sequential(nn.Conv2d(3, 2, 1)).double(), _images(1), "0")


def test_default_layers_and_candidates():
    resnet = create_classifier("resnet20-cifar10", bundled=False)
    small = create_classifier("digits-cnn", bundled=False)
    assert default_layer(resnet) == "net.layer3"
    assert default_layer(CifarResNet(20)) == "layer3"
    assert default_layer(small) == "net.features.7"
    assert isinstance(get_layer(small, "net.features.7"), nn.ReLU)
    assert default_layer(GapNet()) == "features.0"
    with pytest.raises(InputError, match="no Conv2d"):
        default_layer(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))
    x = torch.rand(1, 3, 32, 32)
    names = cam_layers(resnet, x)
    assert "net.layer3" in names and "net.linear" not in names and "net" not in names
    assert "net" in cam_layers(resnet)  # the static guess keeps conv containers
    for clf in (resnet, small):
        cam = grad_cam_plus_plus(clf, torch.rand(2, 3, 32, 32))
        assert cam.shape == (2, 32, 32) and float(cam.min()) >= 0 and float(cam.max()) == 1.0


def test_module_form():
    net = GapNet()
    x = _images(2)
    mod = ClassActivationMap(net, "features", method="gradcam")
    torch.testing.assert_close(mod(x, 1), grad_cam(net, x, "features", 1))
    assert "gradcam" in repr(mod)
    with pytest.raises(UnknownNameError):
        ClassActivationMap(net, "feature")
    wrapped = Classifier(GapNet(), num_classes=4)
    assert ClassActivationMap(wrapped).layer == "net.features.0"


@pytest.mark.parametrize("device", DEVICES)
def test_cam_and_maps_on_device(device):
    net = GapNet().to(device)
    x = _images(2, h=12, w=10).to(device)
    cam = grad_cam_plus_plus(net, x, "features")
    assert cam.device.type == device
    torch.testing.assert_close(cam.cpu(), grad_cam_plus_plus(net.cpu(), x.cpu(), "features"))
    y = (x + 0.1).clamp(0, 1)
    maps = block_ssim_maps(x, y)
    counts = overlap_curves(maps, cam, [0.0, 0.05])
    assert counts.tp.device.type == device


# ---------------------------------------------------------------- overlap


def _np_counts(n: np.ndarray, g: np.ndarray) -> np.ndarray:
    if n.ndim == 4:
        g = np.broadcast_to(g[:, None], n.shape)
    ax = tuple(range(1, n.ndim))
    return np.stack([(n & g).sum(ax), (n & ~g).sum(ax), (~n & g).sum(ax), (~n & ~g).sum(ax)])


def test_confusion_counts_equal_numpy():
    rng = np.random.default_rng(0)
    g = rng.random((4, 6, 5)) < 0.3
    for shape in ((4, 6, 5), (4, 3, 6, 5)):
        n = rng.random(shape) < 0.4
        got = torch.stack(confusion_counts(torch.from_numpy(n), torch.from_numpy(g)))
        np.testing.assert_array_equal(got.numpy(), _np_counts(n, g))
    with pytest.raises(ShapeError, match="boolean"):
        confusion_counts(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ShapeError, match="differ"):
        confusion_counts(torch.zeros(1, 2, 3, dtype=torch.bool), torch.zeros(1, 2, 2) > 0)


def _random_maps(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM-like maps on a 1/16 grid (so thresholds can tie exactly) and CAMs."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randint(-2, 17, (5, 3, 7, 6), generator=g).double() / 16
    maps[3] = 1.0  # an unperturbed image: precision undefined
    cam = torch.rand(5, 7, 6, generator=g)
    cam[4] = 0.0  # no salient pixel: recall undefined
    return maps, cam


@pytest.mark.parametrize("combine", ["any", "mean", "all", "channels"])
def test_overlap_curves_equal_direct_numpy_counts(combine):
    maps, cam = _random_maps(1)
    thresholds = [0.0, 1 / 16, 0.11, 0.25, 0.5, 3 / 8, 2.0, -0.1]  # ties, none, all
    counts = overlap_curves(maps, cam, thresholds, combine=combine)
    s, gm = maps.numpy(), cam.numpy() > 0.75
    for i, t in enumerate(thresholds):
        per_channel = (1 - s) > t
        n = {
            "any": per_channel.any(1),
            "all": per_channel.all(1),
            "mean": (1 - s.mean(1)) > t,
            "channels": per_channel,
        }[combine]
        ref = _np_counts(n, gm)
        got = np.stack([c[i].numpy() for c in (counts.tp, counts.fp, counts.fn, counts.tn)])
        np.testing.assert_array_equal(got, ref)
        tn_ = torch.from_numpy(n)
        assert torch.equal(noise_mask(maps, t, combine=combine), tn_)
    assert int(counts.tp.sum()) > 0 and int(counts.fp.sum()) > 0  # both regions are hit


def test_metrics_follow_the_paper_definitions():
    maps, cam = _random_maps(2)
    thresholds = [0.05, 0.2, 0.4]
    counts = overlap_curves(maps, cam, thresholds)
    tp, fp, fn, tn = (c.numpy().astype(float) for c in (counts.tp, counts.fp, counts.fn, counts.tn))
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = {
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "iou": tp / (tp + fp + fn),
            "iou_outside": fp / (tp + fp + tn),
            "perturbed_fraction": (tp + fp) / (7 * 6),
        }
    # IoU outside is IoU(N, ~G), computed here from the masks themselves
    g = cam.numpy() > 0.75
    for i, t in enumerate(thresholds):
        n = noise_mask(maps, t).numpy()
        inter, union = (n & ~g).sum((1, 2)), (n | ~g).sum((1, 2))
        np.testing.assert_allclose(counts.iou_outside()[i].numpy(), inter / union)
    np.testing.assert_allclose(counts.precision().numpy(), ref["precision"])
    np.testing.assert_allclose(counts.recall().numpy(), ref["recall"])
    np.testing.assert_allclose(counts.iou().numpy(), ref["iou"])
    np.testing.assert_allclose(counts.perturbed_fraction().numpy(), ref["perturbed_fraction"])
    assert np.isnan(counts.precision().numpy()[:, 3]).all()  # image 3: nothing perturbed
    assert np.isnan(counts.recall().numpy()[:, 4]).all()  # image 4: nothing salient
    assert (counts.precision(zero_division=0.0).numpy()[:, 3] == 0).all()
    means = counts.means()
    for k, v in ref.items():
        np.testing.assert_allclose(means[k].numpy(), np.nanmean(v, axis=1))
    assert set(means) == set(ref)


def test_localised_perturbation_inside_the_salient_region():
    # a bump well inside G (further than the 5-pixel Gaussian window radius from its edge)
    x = torch.full((1, 3, 32, 32), 0.5)
    x_adv = x.clone()
    x_adv[..., 14:18, 14:18] += 0.2
    cam = torch.zeros(1, 32, 32)
    cam[:, 8:24, 8:24] = 1.0
    counts = overlap_curves(ssim_maps(x, x_adv), cam, [0.0, 0.01, 0.1])
    assert torch.equal(counts.precision(), torch.ones(3, 1, dtype=torch.float64))
    assert torch.equal(counts.iou_outside(), torch.zeros(3, 1, dtype=torch.float64))
    assert float(counts.recall()[0, 0]) < 1 and float(counts.perturbed_fraction()[0, 0]) > 0
    # the same bump outside G: precision 0
    counts = overlap_curves(ssim_maps(x, x_adv), 1 - cam, [0.01])
    assert float(counts.precision()[0, 0]) == 0.0 and float(counts.iou_outside()[0, 0]) > 0


def test_overlap_errors_and_masks():
    maps, cam = _random_maps(3)
    assert torch.equal(saliency_mask(cam), cam > 0.75)
    assert torch.equal(saliency_mask(cam, 0.5), cam > 0.5)
    with pytest.raises(ShapeError, match="differ"):
        overlap_curves(maps, cam[:, :6], [0.1])
    with pytest.raises(ShapeError, match=r"\(N, H, W\)"):
        overlap_curves(maps, cam[:, None], [0.1])
    with pytest.raises(InputError, match="finite"):
        overlap_curves(maps, cam, [0.1, math.nan])
    with pytest.raises(InputError, match="finite"):
        overlap_curves(maps, cam, [])
    with pytest.raises(InputError, match="combination"):
        distortion(maps, "max")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="noise threshold"):
        noise_mask(maps, math.inf)
    with pytest.raises(ShapeError, match="NaN"):
        overlap_curves(maps * math.nan, cam, [0.1])
    with pytest.raises(ShapeError, match="SSIM maps"):
        distortion(maps[0])
