"""Classifier zoo: [0, 1] images in, logits out (normalisation inside the wrapper).

Example:
    >>> import torch
    >>> clf = create_classifier("resnet20-cifar10", bundled=False)
    >>> clf(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from advsr.errors import InputError, ModelLoadError
from advsr.models.classifiers.cifar_resnet import CIFAR_MEAN_STD, CifarResNet
from advsr.models.classifiers.small_cnn import SmallCNN
from advsr.models.classifiers.wrapper import Classifier
from advsr.models.loading import load_weights
from advsr.registry import Registry

__all__ = [
    "CIFAR10_CLASSES",
    "CLASSIFIERS",
    "Classifier",
    "ClassifierEntry",
    "create_classifier",
    "load_torchscript_classifier",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@dataclass(frozen=True)
class ClassifierEntry:
    """A classifier zoo entry: the bare network factory and its input normalisation."""

    net: Callable[[], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...]
    description: str
    input_size: int
    bundled: str | None = None


CLASSIFIERS: Registry[ClassifierEntry] = Registry("classifier")
for _depth in (20, 32, 44, 56):
    CLASSIFIERS.register(
        f"resnet{_depth}-cifar10",
        ClassifierEntry(
            net=lambda d=_depth: CifarResNet(d),  # type: ignore[misc]
            mean=CIFAR_MEAN_STD[0],
            std=CIFAR_MEAN_STD[1],
            classes=CIFAR10_CLASSES,
            description=f"CIFAR-10 ResNet-{_depth}, akamaster layout (option-A shortcuts)",
            input_size=32,
        ),
    )


CLASSIFIERS.register(
    "digits-cnn",
    ClassifierEntry(
        net=lambda: SmallCNN(10, 16),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        classes=tuple(str(k) for k in range(10)),
        description="bundled: small CNN trained on scikit-learn digits (32x32 RGB)",
        input_size=32,
        bundled="digits-cnn.safetensors",
    ),
)


def create_classifier(
    name: str, weights: str | Path | None = None, *, bundled: bool = True
) -> Classifier:
    """Build a zoo classifier (eval mode), loading ``weights`` strictly into the network.

    Raises:
        UnknownNameError: unknown name.
        ModelLoadError: unsafe or mismatching weights.
    """
    from advsr.models.sr import weights_dir

    entry = CLASSIFIERS.get(name)
    net = entry.net()
    if weights is None and bundled and entry.bundled:
        weights = weights_dir() / entry.bundled
    if weights is not None:
        load_weights(net, weights, name=name)
    return Classifier(net, entry.mean, entry.std, len(entry.classes), entry.classes).eval()


def load_torchscript_classifier(
    path: str | Path,
    *,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    num_classes: int,
) -> Classifier:
    """Wrap a TorchScript file (``torch.jit.load``: no pickled Python code) as a classifier."""
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"no such TorchScript file: {p}")
    if num_classes < 2:
        raise InputError(f"num_classes must be >= 2, got {num_classes}")
    try:
        net = torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # RuntimeError for non-TorchScript files
        raise ModelLoadError(f"{p} is not a TorchScript file: {str(exc).splitlines()[0]}") from None
    return Classifier(net, mean, std, num_classes).eval()
