"""The hand-built ResNet of the classic PyTorch tutorials, as ResNet-18 or ResNet-34."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with ReLU, plus a shortcut: out = relu(body(x) + shortcut(x)).

    The shortcut is the identity, or a 1x1 conv-BN projection when the stride or the channels change.

    >>> ResidualBlock(16, 32, stride=2)(torch.zeros(2, 16, 8, 8)).shape
    torch.Size([2, 32, 4, 4])

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        stride: Stride of the first convolution (2 halves height and width).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18/34: a stem, four stages of residual blocks (widths w, 2w, 4w, 8w), average pooling, linear.

    The `cifar` stem (3x3 conv, stride 1, no max-pooling) suits 32 px images; the `imagenet` stem
    (7x7 conv stride 2, then 3x3 max-pooling stride 2) suits larger ones (64 px and up). Adaptive
    pooling makes any input size work.

    >>> net = ResNet(num_classes=10, in_channels=3, image_size=(32, 32), width=8)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images (unused: the pooling adapts to any size).
        depth: 18 (blocks per stage 2, 2, 2, 2) or 34 (3, 4, 6, 3).
        stem: `cifar` for small images, `imagenet` for large ones (downsamples 4x more).
        width: Channels of the first stage (64 in the paper); the stages have 1, 2, 4, 8 times that.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: tuple[int, int] = (32, 32),
        depth: Literal[18, 34] = 18,
        stem: Literal["cifar", "imagenet"] = "cifar",
        width: int = 64,
    ) -> None:
        super().__init__()
        layers: list[tuple[str, nn.Module]]
        if stem == "cifar":
            layers = [("conv1", nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False))]
        else:
            layers = [("conv1", nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False))]
        layers += [("bn1", nn.BatchNorm2d(width)), ("relu", nn.ReLU(inplace=True))]
        if stem == "imagenet":
            layers.append(("maxpool", nn.MaxPool2d(3, stride=2, padding=1)))
        channels = width
        for i, blocks in enumerate(BLOCKS[depth]):
            out_channels = width * 2**i
            layers.append(
                (f"layer{i + 1}", self._make_layer(channels, out_channels, blocks, 1 if i == 0 else 2))
            )
            channels = out_channels
        layers += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        self.features = nn.Sequential(OrderedDict(layers))
        self.classifier = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_layer(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        """A stage of `blocks` residual blocks; the first one changes the stride and the channels."""
        layers = [ResidualBlock(in_channels, out_channels, stride)]
        layers += [ResidualBlock(out_channels, out_channels) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
