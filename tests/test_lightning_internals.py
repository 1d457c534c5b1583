"""The private Lightning names this template relies on, each pinned here, so that a Lightning upgrade that
renames one fails in this one clearly named place (and not somewhere deep in a run).

Each has no public equivalent in lightning 2.6:
- `LightningCLI._parse_ckpt_path` (src/lightning_cli.py): reads the model's hyperparameters from
  `--ckpt_path`; overridden to name the file when they do not fit the config.
- `LightningCLI._dump_config` / `config_dump` (src/lightning_cli.py): the YAML dump the hyperparameters
  are saved from; a backbone without `init_args` gets an empty one there.
- `ModelCheckpoint._every_n_train_steps`, `_last_global_step_saved`, `_save_last_checkpoint`,
  `_monitor_candidates` (src/callbacks/checkpoint.py): `StepCheckpoint` writes the final `last.ckpt`.
- `fit_loop.epoch_loop._batches_that_stepped` (src/callbacks/evaluation.py): the step Lightning logs an
  epoch's scalars at, so figures line up with them.
- `fit_loop._combined_loader` (src/models/schedules.py): dropped after `estimated_stepping_batches` built
  it early, so that the fit loop builds it again and restores a resumed loader's position (Lightning
  issue #20550; tests/test_faults.py resumes through it).
"""

from __future__ import annotations

import inspect

import lightning.pytorch.cli
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loops.fit_loop import _FitLoop

from src.lightning_cli import cli_main


def test_lightning_cli_internals():
    init = inspect.getsource(LightningCLI.__init__)
    # Called once the arguments are parsed, before the classes are instantiated.
    assert init.index("self.parse_arguments(") < init.index("self._parse_ckpt_path()")
    assert init.index("self._parse_ckpt_path()") < init.index("self.before_instantiate_classes()")
    dump = inspect.getsource(LightningCLI._dump_config)
    assert "self.config_dump" in dump
    instantiator = inspect.getsource(lightning.pytorch.cli._InstantiatorFn)
    assert "self.cli._dump_config()" in instantiator and "self.cli.config_dump" in instantiator


def test_model_checkpoint_internals(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_last=True)
    assert callback._every_n_train_steps == 3
    assert callback._last_global_step_saved == 0
    assert callable(callback._save_last_checkpoint) and callable(callback._monitor_candidates)
    assert list(inspect.signature(callback._save_last_checkpoint).parameters) == [
        "trainer",
        "monitor_candidates",
    ]


def test_fit_loop_counts_batches_that_stepped(fast_args):
    cli = cli_main(
        [
            "fit",
            *fast_args,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
            "--test_after_fit=false",
        ]
    )
    assert cli.trainer.fit_loop.epoch_loop._batches_that_stepped == 3 == cli.trainer.global_step


def test_fit_loop_builds_its_loader_again_when_dropped():
    setup = inspect.getsource(_FitLoop.setup_data)
    # The early return that skips restoring the loader's state, and the restore at the end of a rebuild.
    assert "if self._combined_loader is not None and not self._should_reload_train_dl:" in setup
    assert "self._load_combined_loader_states()" in setup
