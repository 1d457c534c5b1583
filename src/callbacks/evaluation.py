"""Evaluation figures in TensorBoard (confusion matrix, misclassified examples); per-class test accuracy."""

from __future__ import annotations

import math
import re
import time
from typing import Any, cast

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import AttributeDict
from torchmetrics.classification import MulticlassConfusionMatrix

from src.callbacks.figures import (
    accuracy,
    confusion_matrix_figure,
    misclassified_figure,
    per_class_scores,
    per_class_table,
)


class EvaluationFigures(Callback):
    """Confusion matrix and misclassified examples at the best validation epoch and at the end of test.

    During a validation or test epoch it counts (true, predicted) pairs in a torchmetrics
    `MulticlassConfusionMatrix` (summed over all processes under DDP) and keeps the first
    `num_misclassified` misclassified images on the CPU (those seen by global rank 0 under DDP). At the
    end of the epoch it logs, with `add_figure` to every `TensorBoardLogger` and from global rank 0 only:

    - `val/confusion_matrix` and `val/misclassified` of an epoch whose accuracy is the best so far
      (strictly better, as the best checkpoint on `val/acc` is chosen; never during the sanity check), at
      that epoch's step. Drawing them costs about half a second, so they are drawn at most once every
      `min_interval` seconds: a best epoch that comes sooner is kept and drawn later (or when training
      ends), unless a better one replaces it;
    - `test/confusion_matrix` and `test/misclassified` at the end of every test.

    At the end of test it also logs, for each class, its accuracy (= its recall) `test/acc_<class>`,
    `test/precision_<class>`, `test/recall_<class>` and `test/f1_<class>` (characters of the name other
    than letters, digits, `_`, `-` and `.` replaced by `_`, e.g. `test/f1_T-shirt_top`), computed from
    the torchmetrics confusion matrix (0 where undefined, as torchmetrics does), and prints a table of
    them with their macro average (rank 0).

    The model's `validation_step` / `test_step` must return a dict with `preds` (predicted class ids of
    the batch, shape (N,)), and the batch must be `(images, labels)`. Class names come from the model's
    `class_names` (else `hparams.num_classes` numbered names), and misclassified images are shown
    un-normalised with its `input_mean` / `input_std` buffers when it has them.

    The last matrix computed for each stage is kept in `confusion_matrices["val"]` /
    `confusion_matrices["test"]` (rows: true class, columns: predicted class; CPU int64 tensors).

    Args:
        num_misclassified: Misclassified examples in the grid (0: no grid).
        ncols: Examples per row of the grid.
        min_interval: Seconds between two drawings of the validation figures (0: every best epoch).
    """

    def __init__(self, num_misclassified: int = 16, ncols: int = 4, min_interval: float = 60.0) -> None:
        self.num_misclassified = num_misclassified
        self.ncols = ncols
        self.min_interval = min_interval
        self._drawn_at = -math.inf  # time.monotonic() of the last drawing of the validation figures
        self._pending: tuple[torch.Tensor, list[tuple[torch.Tensor, int, int]], int] | None = None
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
        acc = accuracy(confmat)
        if self.best_val_acc is not None and not acc > self.best_val_acc:
            return
        self.best_val_acc = acc
        self.confusion_matrices["val"] = confmat
        # The step Lightning logs this epoch's scalars at, so figures line up with `val/acc` etc.
        # (private in Lightning; pinned in tests/test_lightning_internals.py)
        step = trainer.fit_loop.epoch_loop._batches_that_stepped
        self._pending, self._examples = (confmat, self._examples, step), []
        if time.monotonic() - self._drawn_at >= self.min_interval:
            self._draw_pending(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw_pending(trainer, pl_module)  # the last best epoch, if it was not drawn yet

    def _draw_pending(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            confmat, examples, step = self._pending
            self._pending, self._drawn_at = None, time.monotonic()
            self._log_figures(trainer, pl_module, "val", confmat, examples, step)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        confmat = self._compute()
        self.confusion_matrices["test"] = confmat
        examples, self._examples = self._examples, []
        step = trainer.fit_loop.epoch_loop._batches_that_stepped  # see on_validation_epoch_end
        self._log_figures(trainer, pl_module, "test", confmat, examples, step)
        names = _class_names(pl_module)
        scores = per_class_scores(confmat)
        for index, key in enumerate(_metric_keys(names)):
            if confmat[index].sum():
                # The matrix is already summed over processes; sync_dist only silences the DDP warning.
                pl_module.log(f"test/acc_{key}", scores["recall"][index].item(), sync_dist=True)
            for name, values in scores.items():
                pl_module.log(f"test/{name}_{key}", values[index].item(), sync_dist=True)
        if trainer.is_global_zero:
            print(per_class_table(names, confmat))

    def _compute(self) -> torch.Tensor:
        assert self._confmat is not None  # made by `_start` at the start of the epoch
        confmat = self._confmat.compute().cpu()
        self._confmat.reset()
        return confmat

    def _log_figures(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        stage: str,
        confmat: torch.Tensor,
        examples: list[tuple[torch.Tensor, int, int]],
        step: int,
    ) -> None:
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
