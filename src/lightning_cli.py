"""The LightningCLI of this template: what every run does, whatever the config.

- links what the datamodule knows (classes, channels, size, normalisation) into the model (`LINKS`);
- a TensorBoard logger by default, in `trainer.default_root_dir/<config name>/version_N`;
- the default callbacks (`default_callbacks`), following the trainer's switches;
- `--ckpt_path best|last` from the newest run of the config, and every `--ckpt_path` file checked first;
- output folders checked before `fit`, and `fit` ending with a test of the best checkpoint.

`src.cli` is the command (`python -m src.cli fit --config ...`); `cli_main` runs the same from Python.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, cast

from jsonargparse import ArgumentError, Namespace
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

import src.data
from src.callbacks import (
    BestCheckpointToLoggers,
    Checkpoint,
    EpochSummaryCSV,
    EvaluationFigures,
    FiniteLossCheck,
    RandomStateCheckpoint,
    SampleImageGrid,
    SigtermCheckpoint,
    StepCheckpoint,
)
from src.checkpoints import check_checkpoint, read_checkpoint, resolve_checkpoint
from src.data import VisionDataModule
from src.errors import UserInputError, describe_config_error
from src.files import check_writable
from src.loggers import DEFAULT_ROOT_DIR, default_logger, fill_in_run_folders, run_root
from src.models import ImageClassifier

#: Facts the datamodule knows, linked into the model (and its backbone) once the datamodule exists;
#: they are saved in every checkpoint, which is then all that prediction and export need.
LINKS = {
    "num_classes": ["model.init_args.num_classes", "model.init_args.backbone.init_args.num_classes"],
    "in_channels": ["model.init_args.in_channels", "model.init_args.backbone.init_args.in_channels"],
    "image_size": ["model.init_args.image_size", "model.init_args.backbone.init_args.image_size"],
    "class_names": ["model.init_args.class_names"],
    "mean": ["model.init_args.mean"],
    "std": ["model.init_args.std"],
}

SUBCOMMANDS = ("fit", "validate", "test", "predict")

#: Every datamodule of `src.data`, imported here (the package imports them lazily) so that a config may
#: name one by its class name alone: `--data FashionMNISTDataModule`.
DATAMODULES = [getattr(src.data, name) for name in src.data.__all__ if name.endswith("DataModule")]


def default_callbacks(
    trainer_config: Any, step_checkpoint: StepCheckpoint | None = None, monitor: str = "val/acc"
) -> list[Callback]:
    """What every run gets besides the config's own callbacks, following the trainer's switches.

    Best checkpoint on `monitor` (`val/acc` or `val/acc_macro`) plus `last.ckpt`, and `step_checkpoint`
    (`last.ckpt` every N steps), unless `enable_checkpointing` is false; the learning rate of each group,
    a per-epoch `summary.csv` (`EpochSummaryCSV`) and, at the end, the best checkpoint
    (`BestCheckpointToLoggers`) to the loggers, unless there is none; a grid of inputs; evaluation
    figures (confusion matrix, misclassified examples) and per-class test scores; a stop on a NaN/inf
    loss; `last.ckpt` on SIGTERM; random states in checkpoints.

    Args:
        trainer_config: The trainer's instantiated config (`enable_checkpointing`, `logger`).
        step_checkpoint: The `--step_checkpoint` callback.
        monitor: The metric the best checkpoint is chosen by (`--monitor`).
    """
    callbacks: list[Callback] = []
    if trainer_config.get("enable_checkpointing") is not False:
        callbacks.append(
            Checkpoint(
                monitor=monitor,
                mode="max",
                save_last=True,
                filename=f"epoch{{epoch:02d}}-{monitor.replace('/', '_')}{{{monitor}:.4f}}",
                auto_insert_metric_name=False,
                enable_version_counter=False,  # last.ckpt is shared with `--step_checkpoint`
            )
        )
        # After the main checkpoint callback, which stays `trainer.checkpoint_callback` (the one
        # `ckpt_path="best"` and `after_fit` use).
        if step_checkpoint is not None:
            callbacks.append(step_checkpoint)
    if trainer_config.get("logger") not in (None, False, []):
        callbacks += [LearningRateMonitor(), EpochSummaryCSV()]
        if trainer_config.get("enable_checkpointing") is not False:
            callbacks.append(BestCheckpointToLoggers())
    callbacks += [
        SampleImageGrid(),
        EvaluationFigures(),
        FiniteLossCheck(),
        SigtermCheckpoint(),
        RandomStateCheckpoint(),
    ]
    return callbacks


class ImageClassificationCLI(LightningCLI):
    """LightningCLI with datamodule-to-model links, a default logger and callbacks, and `--ckpt_path
    best|last` from earlier runs (see the module docstring)."""

    #: The `--ckpt_path` file's content, read once to check it against the model before the run.
    checkpoint: dict | None = None

    def add_arguments_to_parser(self, parser) -> None:
        for source, targets in LINKS.items():
            for target in targets:
                parser.link_arguments(f"data.{source}", target, apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After `fit`, run `test` on the best checkpoint and print the test accuracy.",
        )
        parser.add_argument(
            "--monitor",
            type=Literal["val/acc", "val/acc_macro"],
            default="val/acc",
            help="The metric that chooses the best checkpoint: accuracy, or macro (balanced) accuracy, "
            "which a weak rare class pulls down.",
        )
        # `--step_checkpoint.every_n_train_steps N`: also write last.ckpt every N steps (0: off).
        parser.add_class_arguments(StepCheckpoint, "step_checkpoint")

    def _config(self, config: Namespace) -> Namespace:
        """The subcommand's part of `config` (or all of it, built without a subcommand)."""
        subcommand = config.get("subcommand")
        return config[subcommand] if subcommand else config

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        config = self._config(self.config)
        fill_in_run_folders(config)
        if config.get("ckpt_path") in ("best", "last"):
            config.ckpt_path = resolve_checkpoint(config.ckpt_path, run_root(config))
            print(f"Using checkpoint {config.ckpt_path}", file=sys.stderr)
        if config.get("ckpt_path") and config.ckpt_path not in ("hpc", "registry"):
            self.checkpoint = read_checkpoint(config.ckpt_path, config.get("weights_only") is not False)

    def _parse_ckpt_path(self) -> None:
        # Private in Lightning (pinned in tests/test_lightning_internals.py): LightningCLI reads the model's
        # hyperparameters from `--ckpt_path` here (they replace the config's `model`); name the file when
        # they do not fit this config.
        try:
            super()._parse_ckpt_path()
        except ArgumentError as err:
            raise UserInputError(
                f"--ckpt_path: {self._config(self.config).ckpt_path}: its hyperparameters do not fit this "
                f"config: {describe_config_error(str(err))}"
            ) from None

    def before_instantiate_classes(self) -> None:
        config = self._config(self.config)
        if self.checkpoint is not None:
            model = config.get("model")
            unknown = sorted((model.get("dict_kwargs") or {}) if isinstance(model, Namespace) else {})
            if unknown:  # hyperparameters the model class does not take (another version of the code?)
                raise UserInputError(
                    f"--ckpt_path: {config.ckpt_path}: its hyperparameters do not fit this config: "
                    f"model.init_args: unknown option(s) {', '.join(unknown)} of {model.class_path}"
                )
        if config.trainer.get("logger") is None or config.trainer.get("logger") is True:
            config.trainer.logger = default_logger(config)
        # Lightning writes the linked values into the saved hyperparameters at `backbone.init_args.*` of
        # its YAML dump of the config; a backbone whose only arguments are the linked ones (e.g. LeNet) is
        # dumped without `init_args`, so give it an empty one. No public hook reaches that dump:
        # `_dump_config` and `config_dump` are pinned in tests/test_lightning_internals.py.
        self._dump_config()
        model = self.config_dump.get("model") or {}
        backbone = (model.get("init_args") or {}).get("backbone")
        if isinstance(backbone, str):
            model["init_args"]["backbone"] = {"class_path": backbone, "init_args": {}}
        elif isinstance(backbone, dict):
            backbone.setdefault("init_args", {})

    def instantiate_trainer(self, **kwargs):
        config = self._config(self.config_init)
        own = config.trainer.get("callbacks") or []
        own = list(own) if isinstance(own, (list, tuple)) else [own]
        defaults = default_callbacks(
            config.trainer, config.get("step_checkpoint"), config.get("monitor", "val/acc")
        )
        return super().instantiate_trainer(callbacks=[*own, *defaults], **kwargs)

    def before_fit(self) -> None:
        self.check_before_run()

    def before_validate(self) -> None:
        self.check_before_run()

    def before_test(self) -> None:
        self.check_before_run()

    def before_predict(self) -> None:
        self.check_before_run()

    def check_before_run(self) -> None:
        """Stop with one line, before any work, on a bad `--ckpt_path` or an output folder that cannot be
        written (so that a read-only or full disk shows now, not at the first checkpoint)."""
        config = self.config[self.subcommand]
        if self.checkpoint is not None:
            class_names = getattr(self.datamodule, "class_names", None)
            check_checkpoint(self.checkpoint, config.ckpt_path, self.model, class_names)
            self.checkpoint = None  # Lightning loads the file itself to restore it
        # Lightning sets `Trainer.fast_dev_run` and `rank_zero_only.rank` at runtime without declaring them.
        if (
            self.subcommand != "fit"
            or self.trainer.fast_dev_run  # type: ignore[attr-defined]
            or rank_zero_only.rank != 0  # type: ignore[attr-defined]
        ):
            return  # (other DDP processes would create log folders of their own)
        check_writable(self.trainer.default_root_dir, "trainer.default_root_dir")
        logger = self.trainer.logger
        if isinstance(logger, Logger) and logger.log_dir:
            check_writable(logger.log_dir, "trainer.logger (log folder)")
        for callback in self.trainer.checkpoint_callbacks:
            dirpath = getattr(callback, "dirpath", None)
            if dirpath:
                check_writable(dirpath, "checkpoint dirpath")

    def after_fit(self) -> None:
        # This project's checkpoint callbacks are `ModelCheckpoint`s (Lightning types them `Checkpoint`).
        callback = cast(ModelCheckpoint | None, self.trainer.checkpoint_callback)
        best = callback.best_model_path if callback is not None else ""
        if self.config.fit.get("test_after_fit"):
            if getattr(self.datamodule, "has_test_split", True):
                # Testing a checkpoint restores the callbacks' states saved in it (e.g. an older
                # `last_model_path`): keep the records of this fit.
                states = [(cb, cb.state_dict()) for cb in self.trainer.checkpoint_callbacks]
                self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
                for cb, state in states:
                    cb.load_state_dict(state)
            elif self.trainer.is_global_zero:
                print("No test split in the data config: skipping the test after fit.")
        if self.trainer.is_global_zero and best:
            assert callback is not None  # `best` comes from it
            # No score after resuming a run into a new folder: Lightning reloads only the best path then.
            score = callback.best_model_score
            known = f" ({callback.monitor} = {score:.4f})" if score is not None else ""
            print(f"Best checkpoint: {best}{known}")
            print(f"Last checkpoint: {callback.last_model_path}")
            if "test/acc" in self.trainer.callback_metrics:
                print(
                    f"Test accuracy of the best checkpoint: {self.trainer.callback_metrics['test/acc']:.4f}"
                )


def cli_main(
    args: list[str] | None = None, run: bool = True, exit_on_error: bool = True
) -> ImageClassificationCLI:
    """Run the CLI from Python (tests, notebooks, benchmarks).

    Args:
        args: Replaces `sys.argv[1:]`, e.g. `["fit", "--config", "configs/fashion_mnist.yaml"]`.
        run: Run the subcommand; with False, `args` has no subcommand and the CLI only builds
            `cli.model`, `cli.datamodule` and `cli.trainer` from the config.
        exit_on_error: On a bad config, print jsonargparse's usage and message and exit (status 2); with
            False, raise its `ArgumentError` instead.
    """
    parser_kwargs: dict[str, Any] = {"exit_on_error": exit_on_error}  # main parser and each subcommand's
    parser_kwargs.update({name: {"exit_on_error": exit_on_error} for name in SUBCOMMANDS})
    return ImageClassificationCLI(
        ImageClassifier,
        VisionDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        seed_everything_default=42,
        trainer_defaults={"default_root_dir": DEFAULT_ROOT_DIR},
        save_config_kwargs={"overwrite": True},
        parser_kwargs=parser_kwargs,
        args=args,
        run=run,
    )
