"""Command line: `python -m src.cli {fit,validate,test,predict} --config configs/<x>.yaml`."""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ArgumentError
from lightning import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from src.callbacks import (
    Checkpoint,
    EvaluationFigures,
    FiniteLossCheck,
    RandomStateCheckpoint,
    SampleImageGrid,
    SigtermCheckpoint,
    StepCheckpoint,
)
from src.callbacks.fault_tolerance import SIGTERM_EXIT_STATUS
from src.checkpoints import check_checkpoint, check_writable, read_checkpoint, resolve_checkpoint
from src.data import VisionDataModule
from src.errors import UserInputError, describe_config_error, exit_on_user_error
from src.models import ImageClassifier

#: Facts the datamodule knows, linked into the model (and its backbone) once the datamodule exists;
#: they are saved in every checkpoint, which is then all that prediction and export need.
LINKS = {
    "num_classes": [
        "model.init_args.num_classes",
        "model.init_args.backbone.init_args.num_classes",
    ],
    "in_channels": [
        "model.init_args.in_channels",
        "model.init_args.backbone.init_args.in_channels",
    ],
    "image_size": ["model.init_args.image_size", "model.init_args.backbone.init_args.image_size"],
    "class_names": ["model.init_args.class_names"],
    "mean": ["model.init_args.mean"],
    "std": ["model.init_args.std"],
}


SUBCOMMANDS = ("fit", "validate", "test", "predict")


def default_callbacks() -> list:
    """Best checkpoint on `val/acc` plus `last.ckpt`, learning rate per group, a grid of inputs,
    evaluation figures (confusion matrix, misclassified examples) plus per-class test accuracy, a stop
    on a NaN/inf loss, and `last.ckpt` on SIGTERM (`last.ckpt` every N steps is `--step_checkpoint`)."""
    return [
        Checkpoint(
            monitor="val/acc",
            mode="max",
            save_last=True,
            filename="epoch{epoch:02d}-val_acc{val/acc:.4f}",
            auto_insert_metric_name=False,
            enable_version_counter=False,  # last.ckpt is shared with `--step_checkpoint`
        ),
        LearningRateMonitor(),
        SampleImageGrid(),
        EvaluationFigures(),
        FiniteLossCheck(),
        SigtermCheckpoint(),
        RandomStateCheckpoint(),
    ]


class ImageClassificationCLI(LightningCLI):
    """LightningCLI with datamodule-to-model links and `--ckpt_path best|last` from earlier runs."""

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
        # `--step_checkpoint.every_n_train_steps N`: also write last.ckpt every N steps (0: off).
        parser.add_lightning_class_args(StepCheckpoint, "step_checkpoint")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path") in ("best", "last"):
            config = self.config[subcommand]
            config.ckpt_path = resolve_checkpoint(config.ckpt_path, run_root(config.trainer))
            print(f"Using checkpoint {config.ckpt_path}", file=sys.stderr)

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the model's hyperparameters from `--ckpt_path` here (they replace the
        # config's `model`): check the file first, and name it if its hyperparameters do not parse.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("hpc", "registry"):
            weights_only = self.config[subcommand].get("weights_only") is not False
            self.checkpoint = read_checkpoint(ckpt_path, weights_only)
        try:
            super()._parse_ckpt_path()
        except ArgumentError as err:
            raise UserInputError(
                f"--ckpt_path: {ckpt_path}: its hyperparameters do not fit this config: "
                f"{describe_config_error(str(err))}"
            ) from None
        model = self.config[subcommand].get("model") if ckpt_path else None
        unknown = sorted((model.get("dict_kwargs") or {}) if hasattr(model, "get") else {})
        if unknown:  # hyperparameters the model class does not take (another version of the code?)
            raise UserInputError(
                f"--ckpt_path: {ckpt_path}: its hyperparameters do not fit this config: "
                f"model.init_args: unknown option(s) {', '.join(unknown)} of {model.class_path}"
            )

    def before_instantiate_classes(self) -> None:
        # Lightning writes the linked values into the saved hyperparameters at `backbone.init_args.*`;
        # a backbone whose only arguments are the linked ones (e.g. LeNet) is dumped without
        # `init_args`, so give it an empty one first.
        self._dump_config()
        model = self.config_dump.get("model") or {}
        backbone = (model.get("init_args") or {}).get("backbone")
        if isinstance(backbone, str):
            model["init_args"]["backbone"] = {"class_path": backbone, "init_args": {}}
        elif isinstance(backbone, dict):
            backbone.setdefault("init_args", {})

    def instantiate_trainer(self, **kwargs) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        # `--step_checkpoint` comes before the default callbacks: put it last, so that the best-on-val/acc
        # callback stays `trainer.checkpoint_callback` (the one `ckpt_path="best"` and `after_fit` use).
        trainer.callbacks.sort(key=lambda callback: isinstance(callback, StepCheckpoint))
        return trainer

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
        if self.subcommand != "fit" or self.trainer.fast_dev_run or rank_zero_only.rank != 0:
            return  # (other DDP processes would create log folders of their own)
        check_writable(self.trainer.default_root_dir, "trainer.default_root_dir")
        logger = self.trainer.logger
        if isinstance(logger, Logger) and logger.log_dir:
            check_writable(logger.log_dir, "trainer.logger (log folder)")
        for callback in self.trainer.checkpoint_callbacks:
            if getattr(callback, "dirpath", None):
                check_writable(callback.dirpath, "checkpoint dirpath")

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
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
            print(f"Best checkpoint: {best} ({callback.monitor} = {callback.best_model_score:.4f})")
            print(f"Last checkpoint: {callback.last_model_path}")
            if "test/acc" in self.trainer.callback_metrics:
                print(
                    f"Test accuracy of the best checkpoint: {self.trainer.callback_metrics['test/acc']:.4f}"
                )


def run_root(trainer_config) -> Path:
    """Folder holding this experiment's runs: the logger's `save_dir/name`, else `default_root_dir`."""
    logger = trainer_config.get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    if init_args is not None and init_args.get("save_dir"):
        return Path(init_args.save_dir) / (init_args.get("name") or "")
    return Path(trainer_config.get("default_root_dir") or ".")


def cli_main(
    args: list[str] | None = None, run: bool = True, exit_on_error: bool = True
) -> ImageClassificationCLI:
    """Run the CLI from Python (tests, notebooks).

    Args:
        args: Replaces `sys.argv[1:]`, e.g. `["fit", "--config", "configs/fashion_mnist.yaml"]`.
        run: Run the subcommand; with False, `args` has no subcommand and the CLI only builds
            `cli.model`, `cli.datamodule` and `cli.trainer` from the config.
        exit_on_error: On a bad config, print jsonargparse's usage and message and exit (status 2); with
            False, raise its `ArgumentError` instead.
    """
    parser_kwargs = {"exit_on_error": exit_on_error}  # for the main parser and each subcommand's
    parser_kwargs.update({name: {"exit_on_error": exit_on_error} for name in SUBCOMMANDS})
    return ImageClassificationCLI(
        ImageClassifier,
        VisionDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        seed_everything_default=42,
        trainer_defaults={"default_root_dir": "logs", "callbacks": default_callbacks()},
        save_config_kwargs={"overwrite": True},
        parser_kwargs=parser_kwargs,
        args=args,
        run=run,
    )


def main() -> None:
    """Entry point of `python -m src.cli`: a user's mistake ends with one `error:` line and a non-zero status.

    Exit status 2: a bad config (unknown key, wrong type, a class_path that does not import, a trainer
    setting this machine cannot run, such as a GPU preset without a GPU); 1: a bad
    input file or value found later (data, checkpoint, output folder, a NaN loss); 143: stopped by SIGTERM
    after saving `last.ckpt`.
    """
    with exit_on_user_error():
        try:
            cli_main(exit_on_error=False)
        except ArgumentError as err:
            print(f"error: {describe_config_error(str(err))}", file=sys.stderr)
            sys.exit(2)
        except MisconfigurationException as err:  # e.g. a GPU preset on a machine without a GPU
            print(f"error: trainer: {' '.join(str(err).split())}", file=sys.stderr)
            sys.exit(2)
        except SIGTERMException:
            sys.exit(SIGTERM_EXIT_STATUS)


if __name__ == "__main__":
    main()
