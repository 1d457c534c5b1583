"""CifarCNN, the hand-built ResNet and the torchvision ResNet: shapes, learning, loading weights offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from src.errors import UserInputError
from src.models.components import CifarCNN, ResNet, TorchvisionResNet
from src.models.components.resnet import ResidualBlock

RESNET18_FILE = "resnet18-f37072fd.pth"  # the file name of ResNet18_Weights.IMAGENET1K_V1's URL


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> Path:
    """A torchvision ResNet-18 state dict (random weights, non-trivial BN statistics) saved to a .pth file."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# --- shapes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "channels", "size"),
    [
        (lambda c, s: CifarCNN(7, c, s), 3, 32),
        (lambda c, s: CifarCNN(7, c, s), 1, 28),
        (lambda c, s: ResNet(7, c, s, stem="cifar"), 3, 32),
        (lambda c, s: ResNet(7, c, s, stem="imagenet"), 3, 64),
        (lambda c, s: ResNet(7, c, s, width=16), 1, 28),
        (lambda c, s: TorchvisionResNet(7, c, s, stem="cifar"), 3, 32),
        (lambda c, s: TorchvisionResNet(7, c, s, stem="imagenet"), 3, 64),
        (lambda c, s: TorchvisionResNet(7, c, s), 1, 64),
    ],
    ids=[
        "cnn-rgb32",
        "cnn-gray28",
        "resnet-cifar",
        "resnet-imagenet",
        "resnet-gray",
        "tv-cifar",
        "tv-imagenet",
        "tv-gray",
    ],
)
def test_output_shape(make, channels, size):
    net = make(channels, (size, size))
    assert net(torch.randn(2, channels, size, size)).shape == (2, 7)
    assert isinstance(net.features(torch.randn(2, channels, size, size)), torch.Tensor)


def test_cifar_cnn_is_the_tutorial_network():
    net = CifarCNN(num_classes=10, in_channels=3, image_size=(32, 32))
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64]
    assert all(c.kernel_size == (5, 5) and c.padding == (2, 2) for c in convs)
    assert [(m.in_features, m.out_features) for m in net.classifier if isinstance(m, nn.Linear)] == [
        (1024, 64),
        (64, 10),
    ]


@pytest.mark.parametrize(("depth", "blocks"), [(18, [2, 2, 2, 2]), (34, [3, 4, 6, 3])])
def test_resnet_depth_sets_the_blocks_per_stage(depth, blocks):
    net = ResNet(num_classes=10, in_channels=3, image_size=(32, 32), depth=depth, width=8)
    stages = [getattr(net.features, f"layer{i}") for i in range(1, 5)]
    assert [len(s) for s in stages] == blocks
    assert [s[-1].conv2.out_channels for s in stages] == [8, 16, 32, 64]
    assert net.classifier.in_features == 64


def test_resnet_full_width_matches_the_tutorial():
    net = ResNet(num_classes=10)
    assert net.classifier.in_features == 512 and net.classifier.out_features == 10
    assert net.features.conv1.kernel_size == (3, 3) and "maxpool" not in net.features._modules
    big = ResNet(num_classes=10, stem="imagenet")
    assert big.features.conv1.kernel_size == (7, 7) and big.features.conv1.stride == (2, 2)
    assert isinstance(big.features.maxpool, nn.MaxPool2d)


def test_residual_block_projects_only_when_needed():
    assert isinstance(ResidualBlock(16, 16).shortcut, nn.Identity)
    assert isinstance(ResidualBlock(16, 32).shortcut, nn.Sequential)
    assert isinstance(ResidualBlock(16, 16, stride=2).shortcut, nn.Sequential)


@pytest.mark.parametrize(
    ("arch", "depth", "fc_in"), [("resnet34", [3, 4, 6, 3], 512), ("resnet50", [3, 4, 6, 3], 2048)]
)
def test_torchvision_resnet_archs(arch, depth, fc_in):
    net = TorchvisionResNet(num_classes=5, in_channels=3, image_size=(64, 64), arch=arch)
    assert [len(getattr(net.features, f"layer{i}")) for i in range(1, 5)] == depth
    assert net.classifier.in_features == fc_in and net.classifier.out_features == 5
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_torchvision_resnet_parameter_names():
    net = TorchvisionResNet(num_classes=10, stem="cifar")
    names = [n for n, _ in net.named_parameters()]
    assert names[0] == "features.conv1.weight" and "features.layer4.1.bn2.bias" in names
    assert names[-2:] == ["classifier.weight", "classifier.bias"]
    assert net.features.conv1.kernel_size == (3, 3) and isinstance(net.features.maxpool, nn.Identity)


# --- learning -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "channels", "size", "steps"),
    [
        (lambda: CifarCNN(10, 3, (32, 32)), 3, 32, 20),
        (lambda: ResNet(10, 3, (16, 16), width=8), 3, 16, 10),
        (lambda: ResNet(10, 1, (32, 32), depth=34, stem="imagenet", width=8), 1, 32, 10),
        (lambda: TorchvisionResNet(10, 1, (16, 16)), 1, 16, 10),
    ],
    ids=["cnn", "resnet18-thin", "resnet34-thin-imagenet", "tv-resnet18"],
)
def test_training_steps_lower_the_loss(make, channels, size, steps):
    torch.manual_seed(0)
    net = make()
    x, y = torch.randn(10, channels, size, size), torch.arange(10)
    losses = train(net, x, y, steps)
    assert losses[-1] < 0.5 * losses[0]


# --- weights ------------------------------------------------------------------------------------------


def test_local_weights_file_is_loaded(resnet18_file):
    saved = torch.load(resnet18_file, weights_only=True)
    net = TorchvisionResNet(num_classes=7, in_channels=3, image_size=(64, 64), weights=str(resnet18_file))
    state = net.features.state_dict()
    for key in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer4.1.bn2.weight"]:
        assert torch.equal(state[key], saved[key]), key
    assert set(state) == {k for k in saved if not k.startswith("fc.")}
    assert net.classifier.out_features == 7 and net.classifier.in_features == 512
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_grayscale_conv1_is_the_pretrained_one_summed_over_rgb(resnet18_file):
    saved = torch.load(resnet18_file, weights_only=True)
    net = TorchvisionResNet(num_classes=10, in_channels=1, image_size=(64, 64), weights=str(resnet18_file))
    conv1 = net.features.conv1
    assert conv1.in_channels == 1 and conv1.stride == (2, 2)
    assert torch.allclose(conv1.weight, saved["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(net.features.layer1[0].conv1.weight, saved["layer1.0.conv1.weight"])
    # Two channels: each gets half the sum, so a gray image on both channels gives the same response.
    two = TorchvisionResNet(num_classes=10, in_channels=2, weights=str(resnet18_file))
    assert torch.allclose(two.features.conv1.weight.sum(dim=1, keepdim=True), conv1.weight, atol=1e-6)


def test_cifar_stem_with_weights_keeps_the_rest(resnet18_file):
    saved = torch.load(resnet18_file, weights_only=True)
    net = TorchvisionResNet(num_classes=10, in_channels=3, weights=str(resnet18_file), stem="cifar")
    assert net.features.conv1.kernel_size == (3, 3) and isinstance(net.features.maxpool, nn.Identity)
    assert torch.equal(net.features.layer2[0].downsample[0].weight, saved["layer2.0.downsample.0.weight"])


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1", "DEFAULT"])
def test_weights_name_offline_says_where_to_put_the_file(offline_hub, name):
    with pytest.raises(UserInputError) as info:
        TorchvisionResNet(num_classes=10, weights=name)
    message = str(info.value)
    assert "https://download.pytorch.org/models/" + RESNET18_FILE in message
    assert str(offline_hub / "checkpoints" / RESNET18_FILE) in message
    assert "`weights`" in message and "\n" not in message


def test_weights_name_loads_from_the_hub_cache_offline(offline_hub, resnet18_file):
    (offline_hub / "checkpoints").mkdir(parents=True)
    (offline_hub / "checkpoints" / RESNET18_FILE).write_bytes(resnet18_file.read_bytes())
    net = TorchvisionResNet(num_classes=10, weights="IMAGENET1K_V1")
    saved = torch.load(resnet18_file, weights_only=True)
    assert torch.equal(net.features.conv1.weight, saved["conv1.weight"])


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope" / "resnet18.pth"
    with pytest.raises(UserInputError, match="nope/resnet18.pth"):
        TorchvisionResNet(num_classes=10, weights=str(missing))


@pytest.mark.parametrize(
    ("arch", "name", "match"),
    [
        ("resnet18", "IMAGENET1K_V9", "choose from IMAGENET1K_V1"),
        ("resnet18", "ResNet50_Weights.IMAGENET1K_V2", "not weights of resnet18"),
        ("resnet18", "NoSuch_Weights.X", "no such file"),
    ],
)
def test_bad_weights_names(offline_hub, arch, name, match):
    with pytest.raises(UserInputError, match=match):
        TorchvisionResNet(num_classes=10, arch=arch, weights=name)


def test_weights_file_of_another_arch(resnet18_file):
    with pytest.raises(UserInputError, match="resnet50"):
        TorchvisionResNet(num_classes=10, arch="resnet50", weights=str(resnet18_file))


def test_weights_file_that_is_no_state_dict(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="garbage.pth") as info:
        TorchvisionResNet(num_classes=10, weights=str(bad))
    assert "\n" not in str(info.value)
