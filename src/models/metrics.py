"""The metrics of validation and test beyond plain accuracy, and the class weights of the loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from src.errors import UserInputError


def extra_metrics(num_classes: int) -> nn.ModuleDict:
    """Per stage (`val`, `test`): macro accuracy (the mean of the per-class recalls, i.e. balanced
    accuracy, which a weak rare class pulls down) and top-5 accuracy when there are more than 5 classes.

    Keys are the logged names with `_` for `/` (a `ModuleDict` key cannot hold `/`): `val_acc_macro`,
    `val_acc_top5`, `test_acc_macro`, ...

    >>> sorted(extra_metrics(3))
    ['test_acc_macro', 'val_acc_macro']
    """
    metrics: dict[str, nn.Module] = {}
    for stage in ("val", "test"):
        metrics[f"{stage}_acc_macro"] = MulticlassAccuracy(num_classes, average="macro")
        if num_classes > 5:
            metrics[f"{stage}_acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return nn.ModuleDict(metrics)


def class_weights(
    setting: str | Sequence[float], num_classes: int, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """The loss weight of each class: `auto` weighs each class by n / (classes x its count) (so every
    class counts as much in total, scikit-learn's "balanced"), or the given list.

    >>> [round(w, 3) for w in class_weights("auto", 2, torch.tensor([90, 10])).tolist()]
    [0.556, 5.0]

    Args:
        setting: `auto`, or one weight per class.
        num_classes: Number of classes.
        counts: Training images per class (needed for `auto`).

    Raises:
        UserInputError: A list of the wrong length, a weight < 0, or a class without training images.
    """
    if setting == "auto":
        if counts is None:
            raise UserInputError("model.class_weights: auto needs a datamodule that counts its classes")
        if (counts == 0).any():
            empty = (counts == 0).nonzero().flatten().tolist()
            raise UserInputError(f"model.class_weights: auto: classes {empty} have no training images")
        return counts.sum() / (len(counts) * counts.double()).float()
    weights = torch.tensor([float(w) for w in setting])
    if len(weights) != num_classes:
        raise UserInputError(
            f"model.class_weights: needs one weight per class ({num_classes}), got {len(weights)}"
        )
    if (weights < 0).any():
        raise UserInputError(f"model.class_weights: weights must be >= 0, got {list(setting)}")
    return weights
