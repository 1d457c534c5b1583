"""EMA of the weights: Lightning's `EMAWeightAveraging` with a decay warm-up and the averaged weights
used by every stage that reads a checkpoint."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


def ema_avg_fn(decay: float, warmup: bool):
    """`AveragedModel`'s `avg_fn`: `ema = ema + (w - ema) * (1 - d)`, where `d = decay`, or with `warmup`
    `d = min(decay, (1 + n) / (10 + n))` after `n` updates, so that the first weights, which are far from
    the trained ones, weigh little in short runs (TensorFlow's and timm's EMA warm-up)."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = torch.clamp((1 + num_averaged) / (10 + num_averaged), max=decay) if warmup else decay
        return averaged + (current - averaged) * (1 - d)

    return average


class EMA(EMAWeightAveraging):
    """An exponential moving average of the weights, updated after every optimiser step.

    From Lightning's `EMAWeightAveraging`: validation runs on the averaged weights (so `val/acc` and the
    best checkpoint are the EMA's), every checkpoint's `state_dict` holds the averaged weights (so
    `test`, `predict`, `src.predict`, `src.export` and `src.serve` use them) with the training weights and
    the averaging state beside them (so `--ckpt_path` resumes both), and at the end of fit the model keeps
    the averaged weights. Unlike Lightning's callback, a `test`/`validate`/`predict` run from a checkpoint
    keeps the averaged weights even when the callback is still attached (as in `fit`'s final test).

    Args:
        decay: Weight of the old average at each update (0.999 ~ an average over the last 1,000 steps;
            take less for runs of a few thousand steps).
        warmup: Ramp the decay up over the first updates (see `ema_avg_fn`).
        update_every_n_steps: Update after every N optimiser steps.
        update_starting_at_step: First step to update at (None: from the first step).
        device: Where the average lives (None: with the model; `cpu` to save GPU memory).
        use_buffers: Average the buffers too (batch-norm statistics); else they are copied.
    """

    def __init__(
        self,
        decay: float = 0.999,
        warmup: bool = True,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        device: str | None = None,
        use_buffers: bool = True,
    ) -> None:
        super().__init__(
            device=device,
            use_buffers=use_buffers,
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
        )
        #: The averaging function (`ema_avg_fn`), also for loops written by hand (benchmarks.speed).
        self.avg_fn = ema_avg_fn(decay, warmup)
        self._kwargs["avg_fn"] = self.avg_fn

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        with warnings.catch_warnings():
            # ImageClassifier.configure_model only compiles (once); it shards nothing.
            warnings.filterwarnings("ignore", message=".*overrides the configure_model")
            super().setup(trainer, pl_module, stage)

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Resume both weights in `fit`; elsewhere keep the checkpoint's `state_dict` (averaged weights)."""
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
