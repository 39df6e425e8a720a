"""A small CNN for 32x32 inputs (the bundled demo classifier's architecture)."""

from __future__ import annotations

import torch
from torch import nn

from advsr.models.classifiers.zoo import ClassifierEntry, register_classifier

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """conv-ReLU-pool x2, conv-ReLU, global average pool, linear.

    Args:
        num_classes: logits.
        width: channels of the first conv (then 2x, 4x).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


register_classifier(
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
