"""Evaluation figures and tables: the confusion matrix, misclassified examples, per-class scores."""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix_figure(confmat: torch.Tensor, class_names: list[str]) -> Figure:
    """A matplotlib figure (Agg, no pyplot) of `confmat` (rows: true, columns: predicted), drawn by
    torchmetrics' own `MulticlassConfusionMatrix.plot`, with counts in the cells (up to 30 classes)."""
    n = len(class_names)
    size = max(5.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    MulticlassConfusionMatrix(n).plot(
        confmat, ax=ax, labels=list(class_names), cmap="Blues", add_text=n <= 30
    )
    ax.set_title(f"accuracy {accuracy(confmat):.4f} ({int(confmat.sum())} images)")
    return fig


def misclassified_figure(
    examples: list[tuple[torch.Tensor, int, int]],
    class_names: list[str],
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    ncols: int = 4,
) -> Figure:
    """A grid of (image (C, H, W), true id, predicted id) examples, each titled `true: X / pred: Y`.

    Images are un-normalised with `mean` / `std` (broadcastable to (1, C, 1, 1)) and clipped to [0, 1];
    without them each image is rescaled to [0, 1]. With no examples, the figure says so.
    """
    if not examples:
        fig = Figure(figsize=(3, 1))
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return fig
    ncols = max(1, min(ncols, len(examples)))
    nrows = math.ceil(len(examples) / ncols)
    fig = Figure(figsize=(2.6 * ncols, 2.8 * nrows), layout="constrained")
    for k, (image, true, pred) in enumerate(examples):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(
            _displayable(image, mean, std), cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1
        )
        ax.set_title(f"true: {class_names[true]} / pred: {class_names[pred]}", fontsize=8)
        ax.axis("off")
    return fig


def per_class_scores(confmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall and F1 of each class from a confusion matrix (rows: true, columns: predicted),
    0 where a class was never predicted or never present (torchmetrics' `zero_division=0`).

    >>> {k: v.tolist() for k, v in per_class_scores(torch.tensor([[3, 1], [0, 0]])).items()}
    {'precision': [1.0, 0.0], 'recall': [0.75, 0.0], 'f1': [0.8571428656578064, 0.0]}
    """
    matrix = confmat.double()
    correct = matrix.diag()
    precision = torch.nan_to_num(correct / matrix.sum(dim=0))
    recall = torch.nan_to_num(correct / matrix.sum(dim=1))
    f1 = torch.nan_to_num(2 * precision * recall / (precision + recall))
    return {"precision": precision.float(), "recall": recall.float(), "f1": f1.float()}


def per_class_table(class_names: list[str], confmat: torch.Tensor) -> str:
    """Per-class accuracy (= recall), precision, recall, F1 and image count, one class per line, then
    their macro average (over the classes that have test images)."""
    width = max(len("macro avg"), *(len(name) for name in class_names))
    lines = ["Per-class test accuracy:", f"{'class':<{width}}  accuracy  precision  recall      f1  count"]
    scores = per_class_scores(confmat)
    counts = confmat.sum(dim=1)
    for index, name in enumerate(class_names):
        count = int(counts[index])
        acc = f"{scores['recall'][index]:.4f}" if count else "n/a"
        p, r, f = (f"{scores[k][index]:.4f}" for k in ("precision", "recall", "f1"))
        lines.append(f"{name:<{width}}  {acc:>8}  {p:>9}  {r:>6}  {f:>6}  {count:>5}")
    present = counts > 0
    if present.any():
        p, r, f = (f"{scores[k][present].mean():.4f}" for k in ("precision", "recall", "f1"))
        lines.append(f"{'macro avg':<{width}}  {r:>8}  {p:>9}  {r:>6}  {f:>6}  {int(counts.sum()):>5}")
    return "\n".join(lines)


def _displayable(image: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None):
    """(C, H, W) tensor -> (H, W) or (H, W, C) array in [0, 1] for `imshow`."""
    if mean is not None and std is not None:
        image = image * std.detach().cpu().view(-1, 1, 1) + mean.detach().cpu().view(-1, 1, 1)
    else:
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-8)
    image = image.clamp(0, 1)
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def accuracy(confmat: torch.Tensor) -> float:
    """The share of right predictions in a confusion matrix (0 when it is empty)."""
    total = confmat.sum().item()
    return confmat.diag().sum().item() / total if total else 0.0
