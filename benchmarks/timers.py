"""Lightning callbacks that time a `fit` from the inside, so start-up and the test run do not count."""

from __future__ import annotations

import time

import torch
from lightning import Callback, LightningModule, Trainer

from src.callbacks import EMA


class EpochTimer(Callback):
    """Seconds of each training epoch: from `on_train_epoch_start` to `on_train_epoch_end`.

    That is every training batch (loading, transfer, step, logging) and the epoch's validation, if any;
    not the start-up before training, and not the checkpoint saving that follows the epoch's end.
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _sync(pl_module)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _sync(pl_module)
        self.seconds.append(time.perf_counter() - self._start)


class TimeToAccuracy(Callback):
    """After each training epoch, measure test accuracy (clock paused); stop once it reaches `target`.

    `history` holds, per epoch, `(epoch, seconds, train_seconds, test_accuracy)`: `seconds` is the time
    of the fit loop so far (training and validation, from `on_train_start`), `train_seconds` the same
    without validation; neither counts these test evaluations.

    Args:
        target: Test accuracy (a fraction) at which training stops.
    """

    def __init__(self, target: float = 0.92) -> None:
        self.target = target
        self.history: list[tuple[int, float, float, float]] = []
        self._elapsed = self._validation = 0.0
        self._start = self._val_start = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validation += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _sync(pl_module)
        self._elapsed += time.perf_counter() - self._start
        accuracy = test_accuracy(trainer, pl_module)
        epoch = trainer.current_epoch + 1
        self.history.append((epoch, self._elapsed, self._elapsed - self._validation, accuracy))
        if accuracy >= self.target:
            trainer.should_stop = True
        self._start = time.perf_counter()


@torch.no_grad()
def test_accuracy(trainer: Trainer, pl_module: LightningModule) -> float:
    """Accuracy of the model as it is now on the datamodule's test split (evaluation transforms only);
    the averaged weights when an EMA callback keeps them (as validation and checkpoints use them)."""
    ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
    if ema is not None and ema._average_model is not None:
        pl_module = ema._average_model.module
    datamodule = trainer.datamodule
    if datamodule.test_set is None:
        datamodule.setup("test")
    was_training = pl_module.training
    pl_module.eval()
    correct = total = 0
    for images, labels in datamodule.test_dataloader():
        images, labels = images.to(pl_module.device), labels.to(pl_module.device)
        if images.dtype == torch.uint8:  # the in-memory path: normalise as for validation
            images = datamodule.transform_batch(images, train=False)
        correct += (pl_module(images).argmax(dim=1) == labels).sum().item()
        total += len(labels)
    pl_module.train(was_training)
    return correct / total


def _sync(pl_module: LightningModule) -> None:
    if pl_module.device.type == "cuda":
        torch.cuda.synchronize(pl_module.device)
