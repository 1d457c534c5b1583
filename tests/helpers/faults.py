"""Faults for tests/test_faults.py, loaded by the CLI from a config (`tests.helpers.faults.SignalAtStep`),
and a record of the batches a run trained on."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import torch
from lightning import Callback, Trainer

from src.models.components import LeNet


class SignalAtStep(Callback):
    """Sends `signal_name` to this very process when training reaches `step` optimiser steps.

    It runs in `on_train_batch_end` before the checkpoint callbacks (Lightning runs those last), so a
    step checkpoint due at `step` is not written: the kill lands between two step checkpoints.

    Args:
        step: The global step (optimiser steps done) at which to send the signal.
        signal_name: `SIGKILL` or `SIGTERM`.
    """

    def __init__(self, step: int, signal_name: str = "SIGKILL") -> None:
        self.step = step
        self.signal = getattr(signal, signal_name)

    def on_train_batch_end(self, trainer: Trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)


class RecordBatches(Callback):
    """Appends one JSON line per training batch to `folder/batches.rank<R>.jsonl`: the step, epoch and
    batch index, the labels, and a hash of the images (so an augmentation that differs shows).

    Args:
        folder: Where the files go (made if missing).
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer: Trainer, pl_module, batch, batch_idx: int) -> None:
        images, labels = batch
        record = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "batch": batch_idx,
            "labels": labels.tolist(),
            "images": hashlib.sha1(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"batches.rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


def recorded_batches(folder: Path, rank: int = 0) -> list[dict]:
    """The batches `RecordBatches` wrote into `folder` for `rank`, in order."""
    lines = (folder / f"batches.rank{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


class NaNAtCall(LeNet):
    """LeNet whose output is NaN from its `nan_at_call`-th call in training mode on (counting from 0).

    Args:
        nan_at_call: The training-mode forward call that first returns NaN.
        num_classes: Linked by the CLI.
        in_channels: Linked by the CLI.
        image_size: Linked by the CLI.
    """

    def __init__(
        self, nan_at_call: int, num_classes: int = 10, in_channels: int = 1, image_size=(28, 28)
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        self.nan_at_call = nan_at_call
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls > self.nan_at_call:
                out = out * float("nan")
        return out
