"""Model checkpointing that honours `fast_dev_run`."""

from __future__ import annotations

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class Checkpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint`, except that a `fast_dev_run` writes no file at all.

    `ModelCheckpoint(save_last=True)` writes `last.ckpt` when training ends even under `fast_dev_run`
    (lightning 2.6), although that mode is meant to leave nothing behind. Arguments are those of
    `ModelCheckpoint`.
    """

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)
