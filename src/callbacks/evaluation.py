"""Evaluation figures in TensorBoard (confusion matrix, misclassified examples); per-class test accuracy."""

from __future__ import annotations

import math
import re
from typing import Any, cast

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import AttributeDict
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix


class EvaluationFigures(Callback):
    """Confusion matrix and misclassified examples at the best validation epoch and at the end of test.

    During a validation or test epoch it counts (true, predicted) pairs in a torchmetrics
    `MulticlassConfusionMatrix` (summed over all processes under DDP) and keeps the first
    `num_misclassified` misclassified images on the CPU (those seen by global rank 0 under DDP). At the
    end of the epoch it logs, with `add_figure` to every `TensorBoardLogger` and from global rank 0 only:

    - `val/confusion_matrix` and `val/misclassified`, only when the epoch's accuracy is the best so far
      (strictly better, as the best checkpoint on `val/acc` is chosen; never during the sanity check);
    - `test/confusion_matrix` and `test/misclassified` at the end of every test.

    At the end of test it also logs the accuracy of each class as `test/acc_<class name>` (characters
    other than letters, digits, `_`, `-` and `.` replaced by `_`, e.g. `test/acc_T-shirt_top`) and
    prints a table of them (rank 0).

    The model's `validation_step` / `test_step` must return a dict with `preds` (predicted class ids of
    the batch, shape (N,)), and the batch must be `(images, labels)`. Class names come from the model's
    `class_names` (else `hparams.num_classes` numbered names), and misclassified images are shown
    un-normalised with its `input_mean` / `input_std` buffers when it has them.

    The last matrix computed for each stage is kept in `confusion_matrices["val"]` /
    `confusion_matrices["test"]` (rows: true class, columns: predicted class; CPU int64 tensors).

    Args:
        num_misclassified: Misclassified examples in the grid (0: no grid).
        ncols: Examples per row of the grid.
    """

    def __init__(self, num_misclassified: int = 16, ncols: int = 4) -> None:
        self.num_misclassified = num_misclassified
        self.ncols = ncols
        self.best_val_acc: float | None = None
        self.confusion_matrices: dict[str, torch.Tensor] = {}
        self._confmat: MulticlassConfusionMatrix | None = None
        self._examples: list[tuple[torch.Tensor, int, int]] = []

    # -- accumulation -------------------------------------------------------------------------------

    def _start(self, pl_module: LightningModule) -> None:
        num_classes = len(_class_names(pl_module))
        if self._confmat is None or self._confmat.num_classes != num_classes:
            self._confmat = MulticlassConfusionMatrix(num_classes)
        self._confmat = self._confmat.to(pl_module.device)
        self._confmat.reset()
        self._examples = []

    def _update(self, outputs: Any, batch: Any) -> None:
        if not isinstance(outputs, dict) or "preds" not in outputs:
            raise TypeError(
                f"{type(self).__name__} needs validation_step/test_step to return a dict with `preds`"
            )
        images, target = batch[0], batch[1]
        preds = outputs["preds"].detach()
        assert self._confmat is not None  # made by `_start` at the start of the epoch
        self._confmat.update(preds, target)
        room = self.num_misclassified - len(self._examples)
        if room > 0:
            wrong = (preds != target).nonzero().flatten()[:room]
            if len(wrong):
                wrong_images = images[wrong].detach().float().cpu()
                pairs = torch.stack([target[wrong], preds[wrong]], dim=1).tolist()
                self._examples += [(img, t, p) for img, (t, p) in zip(wrong_images, pairs, strict=True)]

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._start(pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._update(outputs, batch)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update(outputs, batch)

    # -- epoch end ----------------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        confmat = self._compute()  # every process takes part in the sync
        acc = _accuracy(confmat)
        if self.best_val_acc is not None and not acc > self.best_val_acc:
            return
        self.best_val_acc = acc
        self._log_figures(trainer, pl_module, "val", confmat)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        confmat = self._compute()
        self._log_figures(trainer, pl_module, "test", confmat)
        names = _class_names(pl_module)
        counts = confmat.sum(dim=1)
        correct = confmat.diag()
        keys = _metric_keys(names)
        for key, n, c in zip(keys, counts.tolist(), correct.tolist(), strict=True):
            if n:
                # The matrix is already summed over processes; sync_dist only silences the DDP warning.
                pl_module.log(f"test/acc_{key}", c / n, sync_dist=True)
        if trainer.is_global_zero:
            print(per_class_table(names, confmat))

    def _compute(self) -> torch.Tensor:
        assert self._confmat is not None  # made by `_start` at the start of the epoch
        confmat = self._confmat.compute().cpu()
        self._confmat.reset()
        return confmat

    def _log_figures(
        self, trainer: Trainer, pl_module: LightningModule, stage: str, confmat: torch.Tensor
    ) -> None:
        self.confusion_matrices[stage] = confmat
        examples, self._examples = self._examples, []
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        names = _class_names(pl_module)
        figures = {f"{stage}/confusion_matrix": confusion_matrix_figure(confmat, names)}
        if self.num_misclassified > 0:
            mean = getattr(pl_module, "input_mean", None)
            std = getattr(pl_module, "input_std", None)
            figures[f"{stage}/misclassified"] = misclassified_figure(
                examples, names, mean=mean, std=std, ncols=self.ncols
            )
        # The step Lightning logs this epoch's scalars at, so figures line up with `val/acc` etc.
        # (private in Lightning; pinned in tests/test_lightning_internals.py)
        step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for tag, figure in figures.items():
            for logger in loggers:
                logger.experiment.add_figure(tag, figure, global_step=step, close=False)
            figure.clear()

    # -- checkpointing ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The best validation accuracy so far, so a resumed run logs only real improvements."""
        return {"best_val_acc": self.best_val_acc}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the best validation accuracy so far."""
        self.best_val_acc = state_dict.get("best_val_acc")


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
    ax.set_title(f"accuracy {_accuracy(confmat):.4f} ({int(confmat.sum())} images)")
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


def per_class_table(class_names: list[str], confmat: torch.Tensor) -> str:
    """Per-class accuracy (diagonal / row sum of `confmat`) and image count, one class per line."""
    width = max(len("class"), *(len(name) for name in class_names))
    lines = ["Per-class test accuracy:", f"{'class':<{width}}  accuracy  count"]
    for name, correct, count in zip(
        class_names, confmat.diag().tolist(), confmat.sum(dim=1).tolist(), strict=True
    ):
        acc = f"{correct / count:.4f}" if count else "n/a"
        lines.append(f"{name:<{width}}  {acc:>8}  {count:>5}")
    return "\n".join(lines)


def _class_names(pl_module: LightningModule) -> list[str]:
    names = getattr(pl_module, "class_names", None)
    if names:
        return list(names)
    return [str(i) for i in range(cast(AttributeDict, pl_module.hparams).num_classes)]


def _metric_keys(class_names: list[str]) -> list[str]:
    """Class names made safe for metric keys; a name that becomes a duplicate gets its index appended."""
    keys: list[str] = []
    for i, name in enumerate(class_names):
        key = re.sub(r"[^0-9A-Za-z_.-]+", "_", name).strip("_") or str(i)
        keys.append(f"{key}_{i}" if key in keys else key)
    return keys


def _accuracy(confmat: torch.Tensor) -> float:
    total = confmat.sum().item()
    return confmat.diag().sum().item() / total if total else 0.0


def _displayable(image: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None):
    """(C, H, W) tensor -> (H, W) or (H, W, C) array in [0, 1] for `imshow`."""
    if mean is not None and std is not None:
        image = image * std.detach().cpu().view(-1, 1, 1) + mean.detach().cpu().view(-1, 1, 1)
    else:
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-8)
    image = image.clamp(0, 1)
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
