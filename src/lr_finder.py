"""A learning-rate range test that respects the config's parameter groups (`python -m src.lr_find`).

Lightning's `Tuner.lr_find` gives every parameter group the same learning rate while it searches, so a
config whose groups learn at `lr_scale` times the base rate is not searched as it trains. `LRRangeTest`
does what Lightning's finder does (an exponential sweep from `min_lr` to `max_lr`, one training step each,
the smoothed loss recorded, a stop when it diverges, the suggestion at the steepest descent of the
loss) with each group at `lr * lr_scale`; groups with a fixed `lr` keep it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning import Callback, LightningModule, Trainer
from matplotlib.figure import Figure

from src.errors import UserInputError
from src.files import replace_when_done

#: The config key of the base learning rate that the suggestion sets.
LR_KEY = "model.init_args.optimizer.init_args.lr"


class LRRangeTest(Callback):
    """Sweep the base learning rate exponentially over `num_steps` training steps and record the loss.

    Args:
        min_lr: The first base learning rate.
        max_lr: The last.
        num_steps: Training steps (one learning rate each).
        early_stop_threshold: Stop when the smoothed loss exceeds this times its lowest value.
        beta: Smoothing of the loss (exponential moving average, bias-corrected, as Lightning's).
    """

    def __init__(
        self,
        min_lr: float = 1e-6,
        max_lr: float = 1.0,
        num_steps: int = 100,
        early_stop_threshold: float = 4.0,
        beta: float = 0.98,
    ) -> None:
        self.min_lr, self.max_lr, self.num_steps = min_lr, max_lr, num_steps
        self.threshold, self.beta = early_stop_threshold, beta
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.scales: list[float | None] = []
        self.group_names: list[str] = []
        self._average, self._best = 0.0, float("inf")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        base = optimizer.defaults["lr"]
        self.scales = [
            g["lr_scale"] if "lr_scale" in g else (1.0 if g["lr"] == base else None)
            for g in optimizer.param_groups
        ]
        self.group_names = [g.get("name") or f"group{i}" for i, g in enumerate(optimizer.param_groups)]
        trainer.strategy.lr_scheduler_configs = []  # the sweep sets the rates; no schedule on top

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = len(self.lrs)
        lr = self.min_lr * (self.max_lr / self.min_lr) ** (step / max(1, self.num_steps - 1))
        for group, scale in zip(trainer.optimizers[0].param_groups, self.scales, strict=True):
            if scale is not None:
                group["lr"] = lr * scale
        self.lrs.append(lr)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        step = len(self.losses) + 1
        self._average = self.beta * self._average + (1 - self.beta) * float(loss)
        smoothed = self._average / (1 - self.beta**step)
        self.losses.append(smoothed)
        self._best = min(self._best, smoothed)
        if (
            step >= self.num_steps
            or not np.isfinite(smoothed)
            or (step > 1 and smoothed > self.threshold * self._best)
        ):
            trainer.should_stop = True

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float:
        """The learning rate at the steepest descent of the loss (Lightning's rule: the most negative
        gradient of the loss curve, leaving out the first `skip_begin` and last `skip_end` points)."""
        losses = np.array(self.losses[skip_begin:-skip_end], dtype=float)
        finite = np.isfinite(losses)
        if finite.sum() < 3:
            raise UserInputError(
                f"--num-steps: only {len(self.losses)} steps were recorded before the loss diverged; too few "
                "to suggest a learning rate (lower --max-lr or raise --num-steps)"
            )
        gradient = np.gradient(losses[finite])
        index = np.flatnonzero(finite)[int(gradient.argmin())]
        return self.lrs[skip_begin + index]

    def group_rates(self, base_lr: float) -> dict[str, float | None]:
        """Each group's learning rate with `base_lr` as the base (None: the group's fixed rate)."""
        return {
            name: None if scale is None else base_lr * scale
            for name, scale in zip(self.group_names, self.scales, strict=True)
        }

    def plot(self, path: Path, suggestion: float) -> Path:
        """Loss against learning rate (log scale), the suggestion marked; saved to `path`."""
        figure = Figure(figsize=(7, 4.5), layout="tight")  # no pyplot: nothing global, no window
        axes = figure.subplots()
        axes.plot(self.lrs[: len(self.losses)], self.losses)
        axes.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested base lr {suggestion:.3g}")
        axes.set(xscale="log", xlabel="base learning rate", ylabel="training loss (smoothed)")
        axes.legend()
        figure.savefig(path, dpi=100)
        return path


def write_lr_config(path: Path, lr: float) -> Path:
    """An overlay config setting the base learning rate: `--config CONFIG --config <path>`."""
    overlay = {"model": {"init_args": {"optimizer": {"init_args": {"lr": float(lr)}}}}}
    with replace_when_done(path, "--write-config") as temporary:
        temporary.write_text(
            f"# The base learning rate suggested by python -m src.lr_find\n{yaml.safe_dump(overlay)}"
        )
    return path
