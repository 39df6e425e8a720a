"""Grad-CAM and Grad-CAM++ class activation maps for any classifier.

Both explain the score ``S^c`` (the logit of class ``c``) through the feature maps
``A^k`` (``k`` = channel) of one layer, chosen by its dotted name in
``model.named_modules()`` (``"net.layer3"`` for a zoo :class:`~advsr.models.classifiers.
Classifier` around a CIFAR ResNet). With ``g^k_ij = dS^c / dA^k_ij``:

* **Grad-CAM** (Selvaraju et al., ICCV 2017, eq. 1-2): channel weights
  ``w_k = mean_ij g^k_ij`` and ``CAM = ReLU(sum_k w_k A^k)``.
* **Grad-CAM++** (Chattopadhay et al., WACV 2018, eq. 19 with ``Y^c = exp(S^c)``): the
  higher derivatives of ``exp(S)`` are powers of the first one when the network is
  piecewise linear after the layer (``d^2 S / dA^2 = 0``), and the ``exp(S)`` factors cancel
  in the ratio, so ``alpha^k_ij = g^2 / (2 g^2 + (sum_ab A^k_ab) g^3)``, taken as 0 where the
  denominator is 0 (i.e. where ``g = 0``, as the reference code); the weights are
  ``w_k = sum_ij alpha^k_ij ReLU(g^k_ij)`` and ``CAM = ReLU(sum_k w_k A^k)``. The paper's
  weights carry the extra factor ``exp(S^c)`` (``ReLU(exp(S) g)``): a positive constant per
  image that the normalisation below removes, and that overflows for logits above ~88 in
  float32, so it is left out (as pytorch-grad-cam). The reference code of Chattopadhay et al.
  and tf-keras-vis (the tool the PGAP paper used) further divide the alphas of each channel by
  their spatial sum; ``normalize_alphas=True`` does the same, which reproduces those tools;
  the default ``False`` is the paper's formula (and pytorch-grad-cam's).

Conventions:

* **Class**: the predicted class (arg-max logit) by default, else the given target per image.
* **Model state**: the CAM is computed in eval mode (BatchNorm running statistics, no
  dropout); every submodule's ``training`` flag is restored afterwards. One forward and one
  backward pass serve the whole batch (images do not interact in eval mode). Gradients come
  from ``torch.autograd.grad`` with respect to the captured activation only, so no ``.grad``
  is left in parameters or inputs; the forward hook is removed even on errors.
* **Activation capture**: the layer's output is detached, marked as requiring grad, and a
  clone is passed on, so an in-place operation after the layer (``ReLU(inplace=True)``)
  changes neither the captured values nor the gradient. A layer called several times in one
  forward pass is captured at its last call.
* **Post-processing** (``resize=True, normalize=True``, the defaults): the ReLU'd CAM of size
  ``h x w`` is resized to the image size with bilinear interpolation (``align_corners=False``,
  no antialiasing, :func:`torch.nn.functional.interpolate`), then min-max normalised per image
  to ``[0, 1]``. Normalising after resizing guarantees that the map reaches exactly 1 (the
  PGAP saliency mask is ``CAM > 0.75``); tf-keras-vis also resizes before normalising (with
  ``scipy.ndimage.zoom(order=1)``, i.e. ``align_corners=True``: pass that to reproduce it).
  A constant map (all zero when no channel votes for the class) normalises to all zeros: no
  salient pixel. ``resize=False, normalize=False`` returns the raw ReLU'd map.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advsr.checks import check_image
from advsr.errors import InputError, UnknownNameError
from advsr.modes import eval_mode

__all__ = [
    "ClassActivationMap",
    "cam_layers",
    "class_activation_map",
    "default_layer",
    "get_layer",
    "grad_cam",
    "grad_cam_plus_plus",
    "normalize_maps",
]

Method = Literal["gradcam", "gradcam++"]
Target = int | Sequence[int] | torch.Tensor | None

_MAX_LISTED = 12


def _depth_order(names: list[str]) -> list[str]:
    """Shallow names first, registration order within a depth (a concise candidate list)."""
    return sorted(names, key=lambda n: n.count("."))


def cam_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[str]:
    """Names of the layers a CAM can be computed on.

    With an input batch ``x``: every named module whose output is a 4-D tensor in a forward
    pass on ``x[:1]`` (eval mode, no gradient; the mode is restored), in call order. Without
    ``x``: every named module that is or contains a ``Conv2d``, in registration order (a
    static guess: it may include a wrapper whose output is not 4-D).

    Args:
        model: any ``nn.Module``.
        x: optional example images.

    Returns:
        Dotted names (the root module, ``""``, excluded).

    Shape:
        ``x``: ``(N, 3, H, W)``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        >>> cam_layers(net, torch.rand(1, 3, 8, 8))
        ['0', '1']
    """
    if x is None:
        return [
            name
            for name, m in model.named_modules()
            if name and any(isinstance(s, nn.Conv2d) for s in m.modules())
        ]
    found: list[str] = []
    handles = []

    def make_hook(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_m: nn.Module, _inp: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.ndim == 4 and name not in found:
                found.append(name)

        return hook

    for name, m in model.named_modules():
        if name:
            handles.append(m.register_forward_hook(make_hook(name)))
    try:
        with eval_mode(model), torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return found


def _unknown_layer(model: nn.Module, name: str, x: torch.Tensor | None) -> UnknownNameError:
    everything = [n for n, _ in model.named_modules() if n]
    valid = cam_layers(model, x)
    close = [n for n in everything if n.endswith("." + name)]
    if not close:
        close = difflib.get_close_matches(name, valid or everything, n=2)
    hint = f" (did you mean {' or '.join(repr(c) for c in close[:2])}?)" if close else ""
    listed = _depth_order(valid)
    more = f", ... ({len(listed) - _MAX_LISTED} more)" if len(listed) > _MAX_LISTED else ""
    kind = "with 4-D outputs" if x is not None else "containing a Conv2d"
    known = ", ".join(listed[:_MAX_LISTED]) + more if listed else "none"
    return UnknownNameError(
        f"{type(model).__name__} has no layer {name!r}{hint}; layers {kind}: {known}"
    )


def get_layer(model: nn.Module, name: str, x: torch.Tensor | None = None) -> nn.Module:
    """The submodule called ``name`` (dotted, as in ``model.named_modules()``).

    Args:
        model: any ``nn.Module``.
        name: the dotted name, e.g. ``"net.layer3"``.
        x: optional example images, used only to list valid layers in the error message.

    Returns:
        The submodule.

    Raises:
        UnknownNameError: no such layer (the message lists candidates and a did-you-mean).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> get_layer(net, "0")
        Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"layer must be a non-empty dotted module name, got {name!r}")
    modules = dict(model.named_modules())
    if name not in modules:
        raise _unknown_layer(model, name, x)
    return modules[name]


def default_layer(model: nn.Module) -> str:
    """The conventional CAM layer: the output of the last convolutional stage.

    Zoo networks (bare or inside a :class:`~advsr.models.classifiers.Classifier`, whose
    network is ``net``): CIFAR ResNet -> ``layer3`` (the last residual stage, post-ReLU, as
    ``layer4`` of ImageNet ResNets in pytorch-grad-cam); SmallCNN -> the ReLU that follows
    its last convolution (rectified feature maps, as the original Grad-CAM code's
    ``relu5_3`` of VGG-16). Any other model -> its last ``Conv2d`` in registration order.

    Args:
        model: a classifier.

    Returns:
        A dotted module name.

    Raises:
        InputError: the model has no ``Conv2d``.

    Example:
        >>> from advsr.models.classifiers import create_classifier
        >>> default_layer(create_classifier("resnet20-cifar10", bundled=False))
        'net.layer3'
    """
    from advsr.models.classifiers.cifar_resnet import CifarResNet
    from advsr.models.classifiers.small_cnn import SmallCNN
    from advsr.models.classifiers.wrapper import Classifier

    prefix, net = "", model
    if isinstance(model, Classifier):
        prefix, net = "net.", model.net
    if isinstance(net, CifarResNet):
        return prefix + "layer3"
    if isinstance(net, SmallCNN):
        layers = list(net.features)
        last = max(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d))
        if last + 1 < len(layers) and isinstance(layers[last + 1], nn.ReLU):
            last += 1
        return f"{prefix}features.{last}"
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError(
            f"{type(model).__name__} has no Conv2d layer; pass the CAM layer name explicitly"
        )
    return convs[-1]


def _targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Class index per image: arg-max by default, else the given ints, validated."""
    n, k = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, bool):
        raise InputError(f"target must be a class index or one per image, got {target!r}")
    if isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long, device=logits.device)
    else:
        t = torch.as_tensor(target, device=logits.device)
        if t.is_floating_point() or t.dtype == torch.bool or t.shape != (n,):
            raise InputError(
                f"target must be an int or {n} integer class indices, got "
                f"{t.dtype} of shape {tuple(t.shape)}"
            )
        t = t.long()
    if bool(((t < 0) | (t >= k)).any()):
        raise InputError(f"target classes must lie in [0, {k}), got {t.tolist()}")
    return t


def _activations_and_gradients(
    model: nn.Module, x: torch.Tensor, layer: str, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward/backward pass: the layer's output ``A`` and ``dS^c / dA`` per image."""
    module = get_layer(model, layer, x)
    captured: dict[str, torch.Tensor] = {}
    bad: list[str] = []

    def hook(_m: nn.Module, _inp: object, out: object) -> torch.Tensor | None:
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            bad.append(str(shape))
            return None
        a = out.detach().requires_grad_(True)
        captured["a"] = a
        return a.clone()  # later in-place ops must not touch the captured activation

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.enable_grad():
            logits = model(x)
            if bad:
                raise InputError(
                    f"layer {layer!r} outputs {bad[-1]}; a CAM needs a 4-D (N, C, h, w) map"
                )
            if "a" not in captured:
                raise InputError(f"layer {layer!r} was not used in the forward pass")
            is_logits = isinstance(logits, torch.Tensor) and logits.ndim == 2
            if not is_logits or logits.shape[0] != x.shape[0]:
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else logits
                raise InputError(f"the model must return logits (N, K), got {got}")
            t = _targets(target, logits)
            score = logits.gather(1, t[:, None]).sum()
            (grad,) = torch.autograd.grad(score, captured["a"], allow_unused=True)
    finally:
        handle.remove()
    a = captured["a"].detach()
    if grad is None:  # the logits do not depend on the layer
        grad = torch.zeros_like(a)
    return a, grad


def normalize_maps(cam: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to ``[0, 1]``; a constant map becomes all zeros.

    Shape:
        ``(N, H, W)`` -> ``(N, H, W)``.

    Example:
        >>> normalize_maps(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])).tolist()
        [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    lo = cam.amin(dim=(1, 2), keepdim=True)
    span = cam.amax(dim=(1, 2), keepdim=True) - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (cam - lo) / safe, torch.zeros_like(cam))


def class_activation_map(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | None = None,
    target: Target = None,
    *,
    method: Method = "gradcam++",
    normalize_alphas: bool = False,
    resize: bool = True,
    normalize: bool = True,
    align_corners: bool = False,
) -> torch.Tensor:
    """Grad-CAM or Grad-CAM++ of a batch (see the module docstring for the formulas).

    Args:
        model: a classifier taking ``[0, 1]`` images and returning logits ``(N, K)``.
        x: images in [0, 1].
        layer: dotted module name; ``None`` takes :func:`default_layer`.
        target: class per image (an int for all, or ``N`` ints); ``None`` = predicted class.
        method: ``"gradcam"`` or ``"gradcam++"``.
        normalize_alphas: Grad-CAM++ only: divide each channel's alphas by their spatial sum
            (the reference code and tf-keras-vis); ``False`` is the paper's eq. 19.
        resize: bilinearly resize the map to the image size.
        normalize: min-max normalise each map to ``[0, 1]`` (after resizing).
        align_corners: passed to the bilinear resize.

    Returns:
        The maps, in the activation dtype. Raw (``resize=normalize=False``): ReLU'd
        ``sum_k w_k A^k`` at the layer's resolution.

    Raises:
        ShapeError: ``x`` is not an image batch.
        UnknownNameError: no such layer (the message lists the layers with 4-D outputs).
        InputError: a layer without a 4-D output, a bad target or method.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, H, W)`` (``(N, h, w)`` without resizing).

    Example:
        >>> from advsr.models.classifiers import create_classifier
        >>> clf = create_classifier("digits-cnn", bundled=False)
        >>> cam = class_activation_map(clf, torch.rand(2, 3, 32, 32))
        >>> cam.shape, bool(cam.min() >= 0), bool(cam.max() <= 1)
        (torch.Size([2, 32, 32]), True, True)
    """
    check_image(x, "x")
    if method not in ("gradcam", "gradcam++"):
        raise InputError(f"unknown CAM method {method!r}; use 'gradcam' or 'gradcam++'")
    name = default_layer(model) if layer is None else layer
    a, g = _activations_and_gradients(model, x, name, target)
    if method == "gradcam":
        weights = g.mean(dim=(2, 3))
    else:
        g2 = g * g
        den = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g
        nonzero = den != 0
        alpha = torch.where(nonzero, g2 / torch.where(nonzero, den, torch.ones_like(den)), 0.0)
        if normalize_alphas:
            total = alpha.sum(dim=(2, 3), keepdim=True)
            alpha = alpha / torch.where(total != 0, total, torch.ones_like(total))
        weights = (alpha * g.clamp(min=0)).sum(dim=(2, 3))
    cam = torch.relu((weights[:, :, None, None] * a).sum(dim=1))
    if resize:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=align_corners)
        cam = cam[:, 0]
    if normalize:
        cam = normalize_maps(cam)
    return cam


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | None = None,
    target: Target = None,
    *,
    resize: bool = True,
    normalize: bool = True,
    align_corners: bool = False,
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): :func:`class_activation_map` with ``"gradcam"``.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, H, W)``.
    """
    return class_activation_map(
        model,
        x,
        layer,
        target,
        method="gradcam",
        resize=resize,
        normalize=normalize,
        align_corners=align_corners,
    )


def grad_cam_plus_plus(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | None = None,
    target: Target = None,
    *,
    normalize_alphas: bool = False,
    resize: bool = True,
    normalize: bool = True,
    align_corners: bool = False,
) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018): :func:`class_activation_map`, ``"gradcam++"``.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, H, W)``.
    """
    return class_activation_map(
        model,
        x,
        layer,
        target,
        method="gradcam++",
        normalize_alphas=normalize_alphas,
        resize=resize,
        normalize=normalize,
        align_corners=align_corners,
    )


class ClassActivationMap(nn.Module):
    """Settings of a CAM bound to a classifier; ``forward(x, target=None)`` gives the maps.

    Args:
        model: the classifier, registered as a submodule (so ``.to(device)`` moves it and
            ``.train()``/``.eval()`` on this module set its mode; computing a CAM never
            changes it).
        layer: dotted layer name (``None``: :func:`default_layer`); checked at construction.
        method: ``"gradcam"`` or ``"gradcam++"``.
        normalize_alphas: Grad-CAM++ alpha normalisation (tf-keras-vis / reference code).
        resize: resize to the image size.
        normalize: min-max normalise per image.
        align_corners: bilinear resize convention.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, H, W)``.

    Example:
        >>> from advsr.models.classifiers import create_classifier
        >>> cam = ClassActivationMap(create_classifier("digits-cnn", bundled=False))
        >>> cam.layer, cam(torch.rand(1, 3, 32, 32)).shape
        ('net.features.7', torch.Size([1, 32, 32]))
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        method: Method = "gradcam++",
        normalize_alphas: bool = False,
        resize: bool = True,
        normalize: bool = True,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if method not in ("gradcam", "gradcam++"):
            raise InputError(f"unknown CAM method {method!r}; use 'gradcam' or 'gradcam++'")
        self.model = model
        self.layer = default_layer(model) if layer is None else layer
        get_layer(model, self.layer)
        self.method: Method = method
        self.normalize_alphas = normalize_alphas
        self.resize = resize
        self.normalize = normalize
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, target: Target = None) -> torch.Tensor:
        return class_activation_map(
            self.model,
            x,
            self.layer,
            target,
            method=self.method,
            normalize_alphas=self.normalize_alphas,
            resize=self.resize,
            normalize=self.normalize,
            align_corners=self.align_corners,
        )

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, method={self.method!r}"
