"""StepLR / MultiStepLR from the config multiply every group's lr exactly as configured."""

from __future__ import annotations

import json

import pytest

from src.lightning_cli import cli_main

OPTIMIZER = """
model:
  init_args:
    optimizer:
      class_path: torch.optim.SGD
      init_args: {{lr: 0.1}}
    param_groups:
      - params: backbone.classifier.*
        lr_scale: 0.5
        name: head
    scheduler: {scheduler}
    scheduler_interval: {interval}
"""


def run(fast_args, overlay, name: str, init_args: dict, interval: str, epochs: int, batches: int):
    """Fit with scheduler `torch.optim.lr_scheduler.<name>`; returns the final lr of each group."""
    scheduler = json.dumps({"class_path": f"torch.optim.lr_scheduler.{name}", "init_args": init_args})
    config = OPTIMIZER.format(scheduler=scheduler, interval=interval)
    limits = [
        f"--trainer.max_epochs={epochs}",
        f"--trainer.limit_train_batches={batches}",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
    ]
    cli = cli_main([*fast_args, *overlay(config), *limits], run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    return {g["name"]: g["lr"] for g in cli.trainer.optimizers[0].param_groups}


def test_step_lr_per_epoch(fast_args, overlay):
    step = {"step_size": 2, "gamma": 0.5}
    lrs = run(fast_args, overlay, "StepLR", step, "epoch", epochs=5, batches=2)
    # 5 epochs: the lr was halved after epochs 2 and 4.
    assert lrs["default"] == pytest.approx(0.1 * 0.5**2)
    assert lrs["head"] == pytest.approx(0.05 * 0.5**2)


def test_multistep_lr_per_epoch(fast_args, overlay):
    milestones = {"milestones": [1, 3], "gamma": 0.1}
    lrs = run(fast_args, overlay, "MultiStepLR", milestones, "epoch", epochs=4, batches=1)
    assert lrs["default"] == pytest.approx(0.1 * 0.1**2)
    assert lrs["head"] == pytest.approx(0.05 * 0.1**2)


def test_step_lr_per_step(fast_args, overlay):
    step = {"step_size": 3, "gamma": 0.5}
    lrs = run(fast_args, overlay, "StepLR", step, "step", epochs=1, batches=7)
    # 7 optimiser steps: the lr was halved after steps 3 and 6.
    assert lrs["default"] == pytest.approx(0.1 * 0.5**2)
    assert lrs["head"] == pytest.approx(0.05 * 0.5**2)
