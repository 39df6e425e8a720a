"""CIFAR-10 ResNet-20/32/44/56 (He et al. 2016) in the akamaster/pytorch_resnet_cifar10 layout.

Three stages of 16/32/64 channels with ``n`` basic blocks each (n = 3, 5, 7, 9), option-A
shortcuts (stride-2 subsampling and zero-padding of the new channels, no parameters), global
average pooling and a linear layer. Keys: ``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv{1,2}``,
``layer{1,2,3}.{i}.bn{1,2}``, ``linear``. The released files store them under ``state_dict``
with a ``module.`` prefix and inputs normalised with the ImageNet mean/std.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advsr.models.classifiers.zoo import ClassifierEntry, register_classifier

__all__ = ["CIFAR10_CLASSES", "CIFAR_MEAN_STD", "CifarResNet"]

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
"""CIFAR-10's class names, in logit order."""

CIFAR_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""The normalisation akamaster's models were trained with."""


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad >= 0:  # option A: subsample and zero-pad the channels
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + x)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs.

    Args:
        depth: 20, 32, 44 or 56 (any 6n+2).
        num_classes: logits.

    Shape:
        ``(N, 3, 32, 32)`` normalised -> ``(N, num_classes)``.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
        blocks = [_Block(cin, cout, stride)] + [_Block(cout, cout, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


for _depth in (20, 32, 44, 56):
    register_classifier(
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
