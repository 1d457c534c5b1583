"""The multilayer perceptron of the classic PyTorch "Quickstart" tutorial."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten -> 512 -> 512 -> classes, with ReLU between the layers.

    >>> MLP(num_classes=10, in_channels=1, image_size=(28, 28))(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images.
        hidden: Width of the two hidden layers.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        hidden: int = 512,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * math.prod(image_size), hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
