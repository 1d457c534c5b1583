"""A torchvision ResNet (18, 34 or 50), optionally with pretrained weights, adapted to the dataset."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from src.errors import UserInputError, one_line
from src.models.loading import load_weights

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin")


def _looks_like_path(weights: str) -> bool:
    return weights.endswith(WEIGHT_SUFFIXES) or "/" in weights or os.sep in weights or Path(weights).exists()


def _weights_enum(arch: str, name: str, who: str = "TorchvisionResNet") -> WeightsEnum:
    """The torchvision weights of `arch` called `name`, e.g. "IMAGENET1K_V1" or "ResNet18_Weights.DEFAULT"."""
    enum = torchvision.models.get_model_weights(arch)
    try:
        weights = torchvision.models.get_weight(name) if "." in name else enum[name]
    except (KeyError, ValueError) as err:
        raise UserInputError(
            f"{who} weights {name!r}: no such file, nor weights of {arch} "
            f"(choose from {', '.join(enum.__members__)}, or give a local .pth path)"
        ) from err
    if not isinstance(weights, enum):
        raise UserInputError(
            f"{who} weights {name!r} are not weights of {arch} (those are {enum.__name__}.*)"
        )
    return weights


@contextmanager
def _downloading(weights: WeightsEnum, who: str = "TorchvisionResNet") -> Iterator[None]:
    """Inside: a failed download of `weights` (offline, bad hash) is one line saying where to put the file."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        reason = one_line(getattr(err, "reason", None) or err)  # a URLError's reason, if any
        raise UserInputError(
            f"{who} weights {weights}: cannot download {weights.url} ({reason}); "
            f"download it elsewhere and put it at {cached}, or pass the file's local path as `weights`"
        ) from err


def _download(weights: WeightsEnum, who: str = "TorchvisionResNet") -> dict[str, torch.Tensor]:
    """The state dict of `weights`, from the torch hub cache or downloaded there."""
    with _downloading(weights, who):
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True, map_location="cpu")


def _load_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str, who: str = "TorchvisionResNet"
) -> None:
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that do not match
        raise UserInputError(
            f"{who} weights: {source} does not fit torchvision's {arch} ({one_line(err)})"
        ) from err
    if missing or unexpected:
        raise UserInputError(
            f"{who} weights: {source} is not a torchvision {arch} state dict "
            f"(missing keys: {missing[:3]}, unexpected keys: {unexpected[:3]})"
        )


class TorchvisionResNet(nn.Module):
    """`torchvision.models.<arch>`, with its input conv, stem and final layer adapted to the dataset.

    `weights` is a torchvision weights name (downloaded once into the torch hub cache,
    `torch.hub.get_dir()/checkpoints`) or the path of a local `.pth` state dict of `arch` in
    torchvision's format. The final layer is always a fresh `nn.Linear(in_features, num_classes)`.
    With `in_channels != 3` the first conv is replaced by one with `in_channels` inputs; with pretrained
    weights it starts from the pretrained conv summed over the RGB channels, divided by `in_channels`
    (so a grayscale image repeated on every channel gives the response of the RGB conv to it). The `cifar`
    stem replaces the first conv by a fresh 3x3 stride-1 conv and drops the max-pooling, for 32 px images.

    >>> net = TorchvisionResNet(num_classes=10, in_channels=1, image_size=(64, 64))
    >>> net(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 10])

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images (unused: the pooling adapts to any size).
        arch: Which torchvision ResNet.
        weights: None (random init), a torchvision weights name such as `IMAGENET1K_V1`,
            `DEFAULT` or `ResNet18_Weights.IMAGENET1K_V1`, or the path of a local `.pth` state dict.
        stem: `imagenet` keeps torchvision's 7x7 stride-2 conv and max-pooling; `cifar` uses a 3x3
            stride-1 conv and no max-pooling (for 32 px images).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: tuple[int, int] = (224, 224),
        arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet18",
        weights: str | None = None,
        stem: Literal["cifar", "imagenet"] = "imagenet",
    ) -> None:
        super().__init__()
        model = torchvision.models.get_model(arch, weights=None)
        pretrained = bool(weights)
        if weights:
            if _looks_like_path(weights):
                load_weights(model, weights, "TorchvisionResNet weights", f"torchvision's {arch}")
            else:
                enum = _weights_enum(arch, weights)
                _load_state_dict(model, _download(enum), str(enum), arch)

        old = model.conv1
        if stem == "cifar":
            model.conv1 = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
            model.maxpool = nn.Identity()
        elif in_channels != old.in_channels:
            model.conv1 = nn.Conv2d(
                in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False
            )
            if pretrained:
                with torch.no_grad():
                    summed = old.weight.sum(dim=1, keepdim=True)
                    model.conv1.weight.copy_(summed.repeat(1, in_channels, 1, 1) / in_channels)
            else:
                nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")

        body = OrderedDict((name, module) for name, module in model.named_children() if name != "fc")
        body["flatten"] = nn.Flatten()
        self.features = nn.Sequential(body)
        self.classifier = nn.Linear(model.fc.in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
