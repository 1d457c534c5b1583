"""Where a run logs: the default logger and the run folders of the logger presets (`configs/logger/`).

A run without a logger in its config gets TensorBoard in `trainer.default_root_dir/<config name>/version_N`.
A logger preset names its folders with two placeholders, filled in for each run, so that it composes with
any config:

    trainer:
      logger:
        class_path: lightning.pytorch.loggers.CSVLogger
        init_args: {save_dir: "{default_root_dir}", name: "{config}"}

`{config}`: the stem of the first `--config` file (`quickstart`); `{default_root_dir}`:
`trainer.default_root_dir` (`logs` by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import Namespace

#: Where runs go without `--trainer.default_root_dir`: `logs/<config name>/version_N/`.
DEFAULT_ROOT_DIR = "logs"
#: The logger's `name` (the experiment's folder) of a run given no `--config` file.
UNNAMED = "lightning_logs"


def experiment_name(config: Namespace) -> str:
    """The experiment's name: the stem of the first `--config` file (`fashion_mnist` for
    `configs/fashion_mnist.yaml`; presets given after it do not rename it)."""
    files = config.get("config") or []
    return Path(str(files[0])).stem if files else UNNAMED


def root_dir(config: Namespace) -> str:
    """`trainer.default_root_dir`, or `DEFAULT_ROOT_DIR`."""
    return str(config.trainer.get("default_root_dir") or DEFAULT_ROOT_DIR)


def default_logger(config: Namespace) -> Namespace:
    """The logger a run gets when its config sets none: TensorBoard in `default_root_dir/<name>`."""
    return Namespace(
        class_path="lightning.pytorch.loggers.TensorBoardLogger",
        init_args=Namespace(save_dir=root_dir(config), name=experiment_name(config), default_hp_metric=False),
    )


def configured_loggers(config: Namespace) -> list[Namespace]:
    """The loggers of `trainer.logger` given as class paths (none for `false`, `true` or no logger)."""
    logger = config.trainer.get("logger")
    loggers = logger if isinstance(logger, list) else [logger]
    return [item for item in loggers if isinstance(item, Namespace)]


def fill_in_run_folders(config: Namespace) -> None:
    """Replace `{config}` and `{default_root_dir}` in the string arguments of the config's loggers."""
    values = {"{config}": experiment_name(config), "{default_root_dir}": root_dir(config)}
    for logger in configured_loggers(config):
        init_args = logger.get("init_args") or Namespace()
        for key, value in vars(init_args).items():
            init_args[key] = _fill(value, values)


def _fill(value: Any, values: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    for placeholder, text in values.items():
        value = value.replace(placeholder, text)
    return value


def run_root(config: Namespace) -> Path:
    """Folder holding this experiment's runs: the first logger's `save_dir/name` (the default logger's
    unless the config names another with a `save_dir`), else `default_root_dir`."""
    default = config.trainer.get("logger") in (None, True)
    loggers = [default_logger(config)] if default else configured_loggers(config)
    init_args = loggers[0].get("init_args") if loggers else None
    if init_args is not None and init_args.get("save_dir"):
        return Path(init_args.save_dir) / (init_args.get("name") or "")
    return Path(root_dir(config))
