"""Model checkpointing that honours `fast_dev_run`, and the best checkpoint reported to the loggers."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class Checkpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint`, except that a `fast_dev_run` writes no file at all.

    `ModelCheckpoint(save_last=True)` writes `last.ckpt` when training ends even under `fast_dev_run`
    (lightning 2.6), although that mode is meant to leave nothing behind. Arguments are those of
    `ModelCheckpoint`.
    """

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Lightning, not declared
            super().on_train_end(trainer, pl_module)


class StepCheckpoint(Checkpoint):
    """Writes `last.ckpt` every `every_n_train_steps` optimiser steps and when training ends, so that a
    killed run loses little work: resume it with `--ckpt_path last`.

    It shares `last.ckpt` with the main checkpoint callback (best on `val/acc`), which in Lightning 2.6
    rewrites it only at the end of an epoch that saved a new best.

    Args:
        every_n_train_steps: Steps between two writes of `last.ckpt`; 0 turns this callback off.
    """

    def __init__(self, every_n_train_steps: int = 500) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        super().__init__(
            every_n_train_steps=every_n_train_steps,
            save_top_k=0,
            save_last=True,
            enable_version_counter=False,  # write the same last.ckpt as the main checkpoint callback
        )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # ModelCheckpoint writes last.ckpt at the end only if it never wrote it: write the final state.
        if trainer.fast_dev_run or self._every_n_train_steps == 0:  # type: ignore[attr-defined]  # see above
            return
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class BestCheckpointToLoggers(Callback):
    """When `fit` ends, tell every logger the best checkpoint's path and score, as hyperparameters
    `best_checkpoint` and `best_score` (TensorBoard's, CSV's `hparams.yaml`, MLflow's params, W&B's
    config), so that a tracker's run says which file to use."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        callback = trainer.checkpoint_callback
        if not isinstance(callback, ModelCheckpoint) or not callback.best_model_path:
            return
        score = callback.best_model_score
        report: dict[str, str | float] = {"best_checkpoint": callback.best_model_path}
        report["best_monitor"] = str(callback.monitor)
        if score is not None:
            report["best_score"] = float(score)
        for logger in trainer.loggers:
            logger.log_hyperparams(report)
            logger.save()
