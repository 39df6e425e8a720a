"""Classifier wrapper: [0, 1] images in, logits out, normalisation inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advsr.checks import check_image

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """Wrap a network trained on normalised inputs so that it takes ``[0, 1]`` RGB images.

    Args:
        net: the network, mapping normalised ``(N, 3, H, W)`` to logits ``(N, K)``.
        mean: per-channel mean subtracted inside (on the [0, 1] scale).
        std: per-channel standard deviation divided by inside.
        num_classes: number of logits.
        class_names: optional names, in logit order.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, num_classes)``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        >>> Classifier(net, (0.5,) * 3, (0.25,) * 3, 2)(torch.rand(5, 3, 4, 4)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        num_classes: int = 10,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else None
        self.input_size: int | None = None  # the side of the images it was trained on
        self.load_size: int | None = None  # user images resized + centre-cropped to this

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "classifier input")
        return self.net((x - self.mean) / self.std)
