"""Command line: `python -m src.cli {fit,validate,test,predict} --config configs/<x>.yaml`."""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningCLI

from src.callbacks import Checkpoint, EvaluationFigures, SampleImageGrid
from src.checkpoints import resolve_checkpoint
from src.data import VisionDataModule
from src.errors import find_user_error
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


def default_callbacks() -> list:
    """Best checkpoint on `val/acc` plus `last.ckpt`, learning rate per group, a grid of inputs, and
    evaluation figures (confusion matrix, misclassified examples) plus per-class test accuracy."""
    return [
        Checkpoint(
            monitor="val/acc",
            mode="max",
            save_last=True,
            filename="epoch{epoch:02d}-val_acc{val/acc:.4f}",
            auto_insert_metric_name=False,
        ),
        LearningRateMonitor(),
        SampleImageGrid(),
        EvaluationFigures(),
    ]


class ImageClassificationCLI(LightningCLI):
    """LightningCLI with datamodule-to-model links and `--ckpt_path best|last` from earlier runs."""

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

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path") in ("best", "last"):
            config = self.config[subcommand]
            config.ckpt_path = resolve_checkpoint(config.ckpt_path, run_root(config.trainer))
            print(f"Using checkpoint {config.ckpt_path}", file=sys.stderr)

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

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        best = callback.best_model_path if callback is not None else ""
        if self.config.fit.get("test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
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


def cli_main(args: list[str] | None = None, run: bool = True) -> ImageClassificationCLI:
    """Run the CLI from Python (tests, notebooks).

    Args:
        args: Replaces `sys.argv[1:]`, e.g. `["fit", "--config", "configs/fashion_mnist.yaml"]`.
        run: Run the subcommand; with False, `args` has no subcommand and the CLI only builds
            `cli.model`, `cli.datamodule` and `cli.trainer` from the config.
    """
    return ImageClassificationCLI(
        ImageClassifier,
        VisionDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        seed_everything_default=42,
        trainer_defaults={"default_root_dir": "logs", "callbacks": default_callbacks()},
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main() -> None:
    """Entry point of `python -m src.cli`: a user's mistake ends with one `error:` line and exit status 1."""
    try:
        cli_main()
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
