"""The three-convolution CNN of the classic CIFAR-10 tutorials."""

from __future__ import annotations

import torch
from torch import nn

from src.models.components.layers import flat_features


class CifarCNN(nn.Module):
    """Three 5x5 convolutions (32, 32, 64 channels), each with ReLU and 2x2 max-pooling, then 64 -> classes.

    Made for 32 px RGB images (the flattened features are then 64 * 4 * 4 = 1024 values); other sizes
    from 8 px up work too.

    >>> CifarCNN(num_classes=10, in_channels=3, image_size=(32, 32))(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images.
        hidden: Width of the hidden fully connected layer.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: tuple[int, int] = (32, 32),
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat_features(self.features, in_channels, image_size), hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
