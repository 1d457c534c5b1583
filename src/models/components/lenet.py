"""LeNet-style CNN of the classic PyTorch "Neural Networks" tutorial."""

from __future__ import annotations

import torch
from torch import nn

from src.models.components.layers import flat_features


class LeNet(nn.Module):
    """Two 5x5 convolutions (6 then 16 channels) with max-pooling, then fully connected 120 -> 84 -> classes.

    Works for 1- or 3-channel inputs of 28 or 32 px (any size from 16 px up).

    >>> LeNet(num_classes=10, in_channels=3, image_size=(32, 32))(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, image_size: tuple[int, int] = (28, 28)
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat_features(self.features, in_channels, image_size), 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
