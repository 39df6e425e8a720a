"""Classifier zoo: [0, 1] images in, logits out (normalisation inside the wrapper).

Example:
    >>> import torch
    >>> clf = create_classifier("resnet20-cifar10", bundled=False)
    >>> clf(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from pathlib import Path

import torch

from advsr.errors import InputError, ModelLoadError, warn
from advsr.models.classifiers.cifar_resnet import CIFAR10_CLASSES
from advsr.models.classifiers.wrapper import Classifier
from advsr.models.classifiers.zoo import CLASSIFIERS, ClassifierEntry, register_classifier
from advsr.models.loading import fits, is_torchscript, load_torchscript, load_weights
from advsr.registry import import_entries

__all__ = [
    "CIFAR10_CLASSES",
    "CLASSIFIERS",
    "Classifier",
    "ClassifierEntry",
    "create_classifier",
    "default_weights",
    "load_classifier_file",
    "load_torchscript_classifier",
    "register_classifier",
]

ENTRY_MODULES = ("cifar_resnet", "small_cnn", "imagenet")
"""The modules that register a classifier, each beside its network (one list)."""

import_entries(__name__, ENTRY_MODULES)


def default_weights(name: str) -> tuple[Path | None, str]:
    """The weights a zoo classifier loads when none are given, and where they come from:
    ``(file, "bundled with advsr")``, ``(file, "installed package")`` or
    ``(None, "no weights")``.

    Raises:
        UnknownNameError: unknown name.
        ModelLoadError: the package that installs them is missing.
    """
    from advsr.models.sr import weights_dir

    entry = CLASSIFIERS.get(name)
    if entry.bundled:
        return weights_dir() / entry.bundled, "bundled with advsr"
    if entry.installed is not None:
        return entry.installed(), "installed package"
    return None, "no weights"


def create_classifier(
    name: str,
    weights: str | Path | None = None,
    *,
    bundled: bool = True,
    init_seed: int | None = None,
    strict: bool = False,
) -> Classifier:
    """Build a zoo classifier (eval mode), loading ``weights`` strictly into the network.

    Args:
        name: a zoo name or a classifier model file.
        weights: a weight file (None: the bundled or installed ones, where there are).
        bundled: use bundled or installed weights when ``weights`` is None.
        init_seed: run untrained on request: the network initialised from this seed.
        strict: refuse a classifier without weights (none given, bundled or installed)
            instead of warning; the command line always refuses.

    Raises:
        UnknownNameError: unknown name.
        InputError: no weights under ``strict``; ``init_seed`` with weights.
        ModelLoadError: unsafe or mismatching weights.
    """
    from advsr.models.sr import check_untrained, no_weights_message, seeded_init

    if name not in CLASSIFIERS and Path(name).is_file():
        if weights is not None:
            raise InputError(f"{name} is a model file: it takes no separate weights")
        return load_classifier_file(name)
    entry = CLASSIFIERS.get(name)
    check_untrained(name, True, weights, init_seed)
    with seeded_init(init_seed):
        net = entry.net()
    untrained = init_seed is not None
    if weights is None and bundled and not untrained:
        weights = default_weights(name)[0]
    if weights is not None:
        load_weights(net, weights, name=name)
    elif bundled and not untrained:
        if strict:
            raise InputError(no_weights_message(name))
        warn(f"{name} has no weights (pass --weights FILE): it runs with random weights")
    clf = Classifier(net, entry.mean, entry.std, len(entry.classes), entry.classes).eval()
    clf.input_size = entry.input_size
    clf.load_size = entry.load_size
    return clf


def load_torchscript_classifier(
    path: str | Path,
    *,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    num_classes: int | None = None,
    input_size: int = 32,
) -> Classifier:
    """Wrap a TorchScript file (``torch.jit.load``: no pickled Python code) as a classifier.

    ``num_classes`` None reads it from one forward pass on a zero ``input_size`` image.
    """
    net = load_torchscript(path)
    if num_classes is None:
        try:
            with torch.no_grad():
                out = net(torch.zeros(1, 3, input_size, input_size))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or ["error"])[0][:120]
            raise ModelLoadError(
                f"{path} fails on a 1x3x{input_size}x{input_size} input: {first}"
            ) from None
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise ModelLoadError(f"{path} does not return logits (N, classes)")
        num_classes = int(out.shape[1])
    if num_classes < 2:
        raise InputError(f"num_classes must be >= 2, got {num_classes}")
    return Classifier(net, mean, std, num_classes).eval()


def load_classifier_file(path: str | Path) -> Classifier:
    """A classifier from a file alone: TorchScript (taking [0, 1] images, classes read from
    one forward pass), or a state_dict that fits a zoo classifier (the first that fits).

    Raises:
        ModelLoadError: unreadable, unsafe, or fitting no zoo classifier.
    """
    from advsr.io import load_state_dict

    p = Path(path)
    if is_torchscript(p):
        return load_torchscript_classifier(p)
    sd = load_state_dict(p)
    for name in CLASSIFIERS.names():
        try:
            with torch.device("meta"):
                shell = CLASSIFIERS.get(name).net()
        except ModelLoadError:  # an optional architecture that is not installed
            continue
        if fits(shell, sd):
            return create_classifier(name, p)
    raise ModelLoadError(
        f"{p} fits no classifier of the zoo (see `advsr list classifiers`); pass --model NAME "
        "--weights FILE, or a TorchScript file"
    )
