"""What every run gets by default (logger, callbacks) and how the trainer's switches turn it off."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from src.callbacks import StepCheckpoint
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO, error_lines, run_cli_main

QUICK = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
QUICK += ["--trainer.limit_test_batches=1"]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_default_logger_is_tensorboard_in_default_root_dir_named_after_the_config(fast_args, tmp_path):
    preset = ["--config", str(REPO / "configs/trainer/cpu.yaml")]  # a preset after it does not rename the run
    cli = cli_main(["fit", *fast_args, *preset, *QUICK])
    logger = cli.trainer.logger
    assert isinstance(logger, TensorBoardLogger) and logger.name == "fashion_mnist"
    assert Path(logger.log_dir) == tmp_path / "fashion_mnist" / "version_0"
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.parent == tmp_path / "fashion_mnist" / "version_0" / "checkpoints"
    assert (Path(logger.log_dir) / "config.yaml").is_file()
    # `--ckpt_path last` looks in the same place.
    cli = cli_main(["validate", *fast_args, "--ckpt_path=last", *QUICK])
    assert cli.trainer.ckpt_path == str(best.parent / "last.ckpt")


def test_a_config_without_a_file_name_logs_as_lightning_does(fashion_mnist_root, tmp_path):
    args = ["--model=ImageClassifier", "--model.backbone=src.models.components.LeNet"]
    args += [
        "--data=FashionMNISTDataModule",
        f"--data.data_dir={fashion_mnist_root}",
        "--data.download=false",
    ]
    args += ["--data.val_size=80", "--data.num_workers=0", f"--trainer.default_root_dir={tmp_path}"]
    cli = cli_main(["fit", *args, *QUICK, "--trainer.enable_progress_bar=false", "--test_after_fit=false"])
    assert Path(cli.trainer.logger.log_dir) == tmp_path / "lightning_logs" / "version_0"


def test_checkpointing_off_means_no_checkpoint_callbacks_and_no_files(fast_args, tmp_path, capsys):
    cli = cli_main(["fit", *fast_args, *QUICK, "--trainer.enable_checkpointing=false"])
    assert not any(isinstance(cb, ModelCheckpoint) for cb in cli.trainer.callbacks)
    assert not list(tmp_path.rglob("*.ckpt"))
    assert any(isinstance(cb, LearningRateMonitor) for cb in cli.trainer.callbacks)
    assert "Test accuracy" not in capsys.readouterr().out  # no best checkpoint to report


def test_logger_off_means_no_logger_only_callbacks_and_no_logs(fast_args, tmp_path):
    cli = cli_main(["fit", *fast_args, *QUICK, "--trainer.logger=false"])
    assert cli.trainer.logger is None
    assert not any(isinstance(cb, LearningRateMonitor) for cb in cli.trainer.callbacks)
    assert not list(tmp_path.rglob("events.out.tfevents*"))
    assert list(tmp_path.rglob("last.ckpt"))  # checkpoints still written, in default_root_dir


def test_step_checkpoint_follows_the_best_checkpoint_callback(fast_args):
    cli = cli_main(["fit", *fast_args, *QUICK, "--step_checkpoint.every_n_train_steps=1"])
    checkpoints = cli.trainer.checkpoint_callbacks
    assert checkpoints[0] is cli.trainer.checkpoint_callback and checkpoints[0].monitor == "val/acc"
    assert isinstance(checkpoints[1], StepCheckpoint)


def test_ckpt_path_best_with_a_damaged_last_checkpoint_is_one_line(fast_args, tmp_path, monkeypatch, capsys):
    cli_main(["fit", *fast_args, *QUICK, "--test_after_fit=false"])
    capsys.readouterr()
    last = next(tmp_path.rglob("last.ckpt"))
    last.write_bytes(last.read_bytes()[:1000])
    before = files_under(tmp_path)
    status, output = run_cli_main(monkeypatch, capsys, ["validate", *fast_args, "--ckpt_path=best"])
    assert status == 1
    lines = error_lines(output)
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: --ckpt_path best: cannot load {last}: a damaged PyTorch file")
    assert files_under(tmp_path) == before  # nothing written, nothing removed


def test_fit_resumed_from_a_finished_run_ends_with_the_checkpoint_lines(fast_args, capsys):
    cli_main(["fit", *fast_args, *QUICK])
    capsys.readouterr()
    cli = cli_main(["fit", *fast_args, *QUICK, "--ckpt_path=last"])  # max_epochs already reached
    lines = capsys.readouterr().out.splitlines()
    best = cli.trainer.checkpoint_callback.best_model_path
    assert f"Best checkpoint: {best}" in lines  # the score is not reloaded into a new run folder
    assert any(line.startswith("Test accuracy of the best checkpoint: ") for line in lines)
