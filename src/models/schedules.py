"""Learning-rate schedules built from the config: warm-up, run length filled in, lr scaled with the batch.

A config names any `torch.optim.lr_scheduler` class; what it would have to compute by hand comes from
the Trainer instead: the run's length (`T_max` of this module's `CosineAnnealingLR`,
`OneCycleLR.total_steps`, when left unset), a linear warm-up in front (`SequentialLR(LinearLR,
scheduler)`), and the learning rate for the global batch when the config gives it per `lr_batch_size`
images (timm's `--lr-base`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer, lr_scheduler
from torch.optim.lr_scheduler import LinearLR, LRScheduler, SequentialLR

from src.errors import UserInputError

#: The argument of each scheduler that holds the run's length in scheduler steps; filled in when the
#: config leaves it unset (None).
LENGTH_ARGUMENTS = {
    "CosineAnnealingLR": "T_max",
    "OneCycleLR": "total_steps",
}


class CosineAnnealingLR(lr_scheduler.CosineAnnealingLR):
    """torch's `CosineAnnealingLR` whose `T_max` a config may leave out: `ImageClassifier` then fills in
    the rest of the run after the warm-up (`configure_optimizers`).

    Args:
        optimizer: The optimiser to schedule.
        T_max: Scheduler steps from the start to the end of the decay (None: the rest of the run).
        eta_min: The learning rate at the end of the decay.
        last_epoch: torch's index of the last step (-1: a new schedule).
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int | None = None, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if T_max is None:
            raise UserInputError("model.scheduler: CosineAnnealingLR needs T_max outside ImageClassifier")
        super().__init__(optimizer, T_max, eta_min, last_epoch)


def scheduler_class(factory: Callable) -> type | None:
    """The class a config's scheduler factory builds (jsonargparse gives `partial(instantiate, cls, ...)`)."""
    if isinstance(factory, functools.partial):
        return next((arg for arg in factory.args if isinstance(arg, type)), factory.func)  # type: ignore
    return factory if isinstance(factory, type) else None


def length_argument(factory: Callable | None) -> str | None:
    """The name of the run-length argument of `factory` when the config left it unset, else None."""
    if factory is None:
        return None
    cls = scheduler_class(factory)
    name = LENGTH_ARGUMENTS.get(cls.__name__) if cls is not None else None
    if name is None or not isinstance(factory, functools.partial):
        return None
    keywords = factory.keywords
    if keywords.get(name) is not None or (name == "total_steps" and keywords.get("epochs") is not None):
        return None
    return name


def warmup_length(warmup_epochs: float, warmup_steps: int, interval: str, steps_per_epoch: float) -> int:
    """Warm-up length in scheduler steps (optimiser steps, or epochs when `interval` is `epoch`).

    >>> warmup_length(0.5, 0, "step", 100), warmup_length(0, 30, "step", 100), warmup_length(2, 0, "epoch", 9)
    (50, 30, 2)
    """
    if warmup_epochs and warmup_steps:
        raise UserInputError("model.warmup_steps: give warmup_epochs or warmup_steps, not both")
    if warmup_epochs < 0 or warmup_steps < 0:
        raise UserInputError("model.warmup_epochs: the warm-up length cannot be negative")
    if warmup_epochs and not math.isfinite(steps_per_epoch):
        raise UserInputError(
            "model.warmup_epochs: the length of an epoch is unknown (trainer.max_steps without "
            "trainer.max_epochs); give the warm-up as model.warmup_steps"
        )
    if interval == "epoch":
        if warmup_steps or warmup_epochs != int(warmup_epochs):
            raise UserInputError(
                "model.warmup_epochs: with scheduler_interval: epoch the warm-up is a whole number of "
                "epochs; set scheduler_interval: step for warmup_steps or a fraction of an epoch"
            )
        return int(warmup_epochs)
    return warmup_steps or math.ceil(warmup_epochs * steps_per_epoch)


def build_schedule(
    optimizer: Optimizer,
    factory: Callable[..., LRScheduler] | None,
    total: int,
    warmup: int,
    start_factor: float = 0.01,
) -> LRScheduler | None:
    """The scheduler of a config, with its length filled in and a linear warm-up of `warmup` steps before it.

    Args:
        optimizer: The optimiser to schedule.
        factory: The config's scheduler (a class or factory taking the optimiser), or None (constant lr
            after the warm-up).
        total: The run's length in scheduler steps (optimiser steps or epochs).
        warmup: Warm-up steps; the lr rises linearly from `start_factor` x lr to lr.
        start_factor: Fraction of the lr the warm-up starts at.

    Raises:
        UserInputError: The warm-up is not shorter than the run.
    """
    if warmup and warmup >= total:
        raise UserInputError(
            f"model.warmup_epochs: the warm-up ({warmup} scheduler steps) must be shorter than the run "
            f"({total} scheduler steps)"
        )
    main = None
    if factory is not None:
        name = length_argument(factory)
        main = factory(optimizer, **{name: total - warmup}) if name else factory(optimizer)
    if not warmup:
        return main
    ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
    if main is None:
        return ramp
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def scale_lr(optimizer: Optimizer, global_batch: int, lr_batch_size: int) -> float:
    """Scale every group's lr (and the optimiser's default) by `global_batch / lr_batch_size`; the factor.

    The linear scaling rule: the config's learning rates are for batches of `lr_batch_size` images.
    """
    factor = global_batch / lr_batch_size
    for group in optimizer.param_groups:
        group["lr"] *= factor
    optimizer.defaults["lr"] *= factor
    return factor


def run_length(trainer: Any, interval: str) -> tuple[int, float]:
    """(scheduler steps of the whole run, optimiser steps per epoch) of `trainer`'s fit.

    Steps come from `trainer.estimated_stepping_batches` (devices, accumulation, `max_steps`,
    `limit_train_batches` counted). Reading it builds the training loader early, which would make Lightning
    skip restoring a stateful loader's position on resume (Lightning issue #20550): the loader is dropped
    again so the fit loop builds it once more and restores it.
    """
    steps = int(trainer.estimated_stepping_batches)
    trainer.fit_loop._combined_loader = None  # see the docstring; pinned in test_lightning_internals
    per_epoch = trainer.num_training_batches / trainer.accumulate_grad_batches
    if interval == "epoch":
        if not trainer.max_epochs or trainer.max_epochs < 0:
            raise UserInputError("trainer.max_epochs: an epoch-wise schedule needs trainer.max_epochs")
        return trainer.max_epochs, per_epoch
    return steps, per_epoch
