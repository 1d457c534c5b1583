"""Callbacks that keep a run safe from faults: a non-finite loss, and SIGTERM from a scheduler."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.errors import UserInputError

#: Exit status of a run stopped by SIGTERM: 128 + 15, what a shell reports for a process killed by it.
SIGTERM_EXIT_STATUS = 143


class NonFiniteLossError(UserInputError):
    """The training loss became NaN or infinite."""


class FiniteLossCheck(Callback):
    """Stops training with a clear error, naming the step, as soon as the training loss is NaN or infinite.

    The check runs before the backward pass, so no optimiser step is taken with the bad loss and the
    checkpoints keep the last finite weights. It finds a bad *loss*; to find the operation that makes a
    *gradient* NaN, run with Lightning's `--trainer.detect_anomaly true` (much slower).
    """

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            value = loss.detach().float().cpu().flatten()[0].item()
            raise NonFiniteLossError(
                f"training loss is {value} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
                f"batch {trainer.fit_loop.epoch_loop.batch_idx}); lower the learning rate or clip gradients "
                "(--trainer.gradient_clip_val 1.0), or run with --trainer.detect_anomaly true to find the "
                "operation that produced it"
            )


class SigtermCheckpoint(Callback):
    """On SIGTERM (what SLURM and cloud schedulers send before stopping a job), saves `last.ckpt` and stops.

    Lightning on its own only notes the signal (`trainer.received_sigterm`) and stops at the end of the
    epoch (or of a validation run) without saving. With this callback the run stops after the training
    step in progress, writes `last.ckpt` where the checkpoint callback keeps it, prints one line saying
    so, and the process exits with status 143 (128 + SIGTERM), so a job script can tell a stopped run from
    a finished one. Resume it with `--ckpt_path last`.
    """

    def on_train_batch_end(self, trainer: Trainer, *args, **kwargs) -> None:
        if trainer.received_sigterm:
            raise SIGTERMException(SIGTERM_EXIT_STATUS)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # Also when Lightning itself stops on SIGTERM (in a validation run or at the end of an epoch).
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = last_checkpoint_path(trainer)
        if path is None:
            return
        trainer.save_checkpoint(path, weights_only=False)  # the full training state, to resume from
        if trainer.is_global_zero:
            print(
                f"Received SIGTERM: saved {path} at step {trainer.global_step}; resume with --ckpt_path last",
                file=sys.stderr,
            )


def last_checkpoint_path(trainer: Trainer) -> Path | None:
    """Where the trainer's checkpoint callback writes `last.ckpt` (None without one or without a folder)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return None


class RandomStateCheckpoint(Callback):
    """Saves the random number generators' states in every checkpoint and restores them on resume.

    Lightning does not save them, so a resumed run draws other dropout masks and augmentations than the
    run it continues. With this callback (and the training loader of `src.data.loaders`), a run resumed
    from a checkpoint on the CPU with `--trainer.deterministic true` ends with the same weights as one
    that was never interrupted. The states are restored when training starts, after the sanity check.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # numpy's stubs pick the `dict` overload, but the default `legacy=True` gives the MT19937 tuple.
        np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        state, self._loaded = self._loaded, None
        if not state:
            return
        torch.set_rng_state(state["torch"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        random.setstate(_as_tuples(state["python"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """`random.setstate` wants tuples where a checkpoint may give back lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
