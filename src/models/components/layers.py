"""Building blocks shared by the networks in this folder."""

from __future__ import annotations

import torch
from torch import nn


def flat_features(features: nn.Module, in_channels: int, image_size: tuple[int, int]) -> int:
    """Number of values `features` outputs for one image, found by running it on a dummy input.

    Runs in eval mode so batch-norm running statistics are left untouched.
    """
    was_training = features.training
    features.eval()
    with torch.no_grad():
        n = features(torch.zeros(1, in_channels, *image_size)).flatten(1).shape[1]
    features.train(was_training)
    return n


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers followed by 2x2 max-pooling (halves height and width)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )
