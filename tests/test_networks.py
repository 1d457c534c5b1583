"""The plain networks: output shapes for their intended inputs, and that they can learn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.models.components import MLP, CifarCNN, ConvNet, LeNet, ResNet, TorchvisionResNet
from src.models.components.layers import flat_features

NETWORKS = [LeNet, MLP, ConvNet, CifarCNN]
# Too slow to train here at full width; tests/test_resnets.py trains thin ones.
ALL_NETWORKS = [*NETWORKS, ResNet, TorchvisionResNet]


@pytest.mark.parametrize("network", ALL_NETWORKS)
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 32), (3, 28)])
def test_output_shape(network, channels, size):
    net = network(num_classes=7, in_channels=channels, image_size=(size, size))
    assert net(torch.randn(4, channels, size, size)).shape == (4, 7)


@pytest.mark.parametrize("network", ALL_NETWORKS)
def test_features_and_classifier_parts(network):
    net = network(num_classes=10)
    assert isinstance(net.features, nn.Module) and isinstance(net.classifier, nn.Module)
    head = list(net.classifier.parameters()) if isinstance(net.classifier, nn.Module) else []
    assert head and head[-1].shape == (10,)  # the last bias has one value per class


@pytest.mark.parametrize("network", NETWORKS)
def test_training_steps_lower_the_loss(network):
    torch.manual_seed(0)
    net = network(num_classes=10, in_channels=1, image_size=(28, 28))
    x, y = torch.randn(32, 1, 28, 28), torch.arange(32) % 10
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_flat_features_leaves_batch_norm_statistics_alone():
    features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten())
    before = features[1].running_var.clone()
    assert flat_features(features, 1, (8, 8)) == 4 * 6 * 6
    assert torch.equal(features[1].running_var, before)
    assert features.training
