"""The real CLI entry point: fit, validate, test and predict from checkpoints; config printing, composing."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.errors import UserInputError
from src.lightning_cli import cli_main
from src.models import ImageClassifier
from src.models.components import ConvNet
from tests.helpers.cli import fast_cli_args

REPO = Path(__file__).resolve().parents[1]
SHORT_FIT = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=3"]


@pytest.fixture(scope="module")
def trained(fashion_mnist_root, tmp_path_factory):
    """The CLI object of one short fit of configs/fashion_mnist.yaml, shared by this module's tests."""
    out = tmp_path_factory.mktemp("trained")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        cli = cli_main(["fit", *fast_cli_args(fashion_mnist_root, out), *SHORT_FIT])
    cli.printed = printed.getvalue()
    return cli


@pytest.fixture
def trained_dir(trained) -> Path:
    """The output folder of that fit."""
    return Path(trained.trainer.default_root_dir)


@pytest.fixture
def run_args(fashion_mnist_root, trained_dir) -> list[str]:
    """Arguments for validate/test/predict runs that find the shared fit's checkpoints."""
    return fast_cli_args(fashion_mnist_root, trained_dir)


def test_fit_writes_checkpoints_config_and_tensorboard_logs(trained, trained_dir):
    callback = trained.trainer.checkpoint_callback
    run_dir = trained_dir / "fashion_mnist" / "version_0"
    assert Path(callback.best_model_path).parent == run_dir / "checkpoints"
    assert Path(callback.best_model_path).name.startswith("epoch")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert "class_path: src.models.components.ConvNet" in (run_dir / "config.yaml").read_text()

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/loss_step",
        "train/loss_epoch",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/acc_best",
        "test/acc",  # fit ends with a test of the best checkpoint
        "test/loss",
    }
    assert expected <= scalars
    assert {"lr-AdamW/head", "lr-AdamW/no_decay", "lr-AdamW/default"} <= scalars
    assert events.Tags()["images"][0] == "train/samples"  # then the evaluation figures
    hparams = (run_dir / "hparams.yaml").read_text()
    assert "T-shirt/top" in hparams and "num_classes: 10" in hparams
    best = [e.value for e in events.Scalars("val/acc_best")]
    assert best == sorted(best)  # best-so-far never decreases
    assert best[-1] == pytest.approx(max(e.value for e in events.Scalars("val/acc")))


def test_checkpoint_is_self_describing_and_loads_weights_only(trained):
    path = trained.trainer.checkpoint_callback.best_model_path  # what trained.model holds
    state = torch.load(path, map_location="cpu", weights_only=True)
    hparams = state["hyper_parameters"]
    assert hparams["class_names"][-1] == "Ankle boot"
    # The normalisation travels with the model.
    assert (list(hparams["mean"]), list(hparams["std"])) == ([0.286], [0.353])
    model = ImageClassifier.load_from_checkpoint(path)
    assert isinstance(model.backbone, ConvNet)
    assert model.backbone.classifier[-1].out_features == 10
    assert torch.equal(model.backbone.classifier[-1].weight, trained.model.backbone.classifier[-1].weight)


def test_validate_best_reproduces_the_recorded_score(trained, run_args):
    recorded = trained.trainer.checkpoint_callback.best_model_score.item()
    cli = cli_main(["validate", *run_args, "--ckpt_path=best"])
    assert cli.trainer.ckpt_path == trained.trainer.checkpoint_callback.best_model_path
    assert cli.trainer.callback_metrics["val/acc"].item() == pytest.approx(recorded)


@pytest.mark.parametrize("which", ["best", "last", "file"])
def test_test_from_checkpoint(trained, run_args, which):
    callback = trained.trainer.checkpoint_callback
    expected = callback.last_model_path if which == "last" else callback.best_model_path
    ckpt = expected if which == "file" else which
    cli = cli_main(["test", *run_args, f"--ckpt_path={ckpt}"])
    assert cli.trainer.ckpt_path == expected
    acc = cli.trainer.callback_metrics["test/acc"].item()
    assert 0.0 <= acc <= 1.0
    assert "test/loss" in cli.trainer.callback_metrics


def test_predict_returns_class_probabilities(trained, run_args):
    cli = cli_main(["predict", *run_args, "--ckpt_path=last"])
    batches = cli.trainer.predict_loop.predictions
    probs = torch.cat(batches)
    assert probs.shape == (80, 10)
    assert torch.allclose(probs.sum(dim=1), torch.ones(80), atol=1e-5)


def test_ckpt_path_last_without_a_run_is_a_clear_error(fast_args):
    with pytest.raises(UserInputError, match="no last.ckpt under .*fashion_mnist"):
        cli_main(["test", *fast_args, "--ckpt_path=last"])


def test_print_config_through_the_module_entry_point():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.cli",
            "fit",
            "--config",
            "configs/fashion_mnist.yaml",
            "--print_config",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "class_path: src.models.components.ConvNet" in result.stdout
    assert "class_path: torch.optim.lr_scheduler.MultiStepLR" in result.stdout
    assert "seed_everything: 42" in result.stdout


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("cpu", "accelerator: cpu"),
        ("gpu", "accelerator: gpu"),
        ("ddp", "strategy: ddp"),
        ("debug", "fast_dev_run: true"),
    ],
)
def test_trainer_presets_compose(preset, expected, capsys):
    args = ["fit", "--config", str(REPO / "configs/fashion_mnist.yaml")]
    args += ["--config", str(REPO / f"configs/trainer/{preset}.yaml"), "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert expected in out
    assert "class_path: src.data.FashionMNISTDataModule" in out  # the dataset config is still there


@pytest.mark.parametrize("backbone", ["LeNet", "MLP", "ConvNet"])
def test_every_network_is_selectable_by_class_path(fast_args, backbone):
    switch = f"--model.init_args.backbone=src.models.components.{backbone}"
    cli = cli_main(["fit", *fast_args, switch, "--config", str(REPO / "configs/trainer/debug.yaml")])
    assert type(cli.model.backbone).__name__ == backbone
    assert cli.trainer.global_step == 1


def test_fit_ends_with_the_test_accuracy_and_the_checkpoint_paths(trained):
    callback = trained.trainer.checkpoint_callback
    lines = trained.printed.strip().splitlines()[-3:]
    assert (
        lines[0] == f"Best checkpoint: {callback.best_model_path} (val/acc = {callback.best_model_score:.4f})"
    )
    assert lines[1] == f"Last checkpoint: {callback.last_model_path}"
    test_acc = trained.trainer.callback_metrics["test/acc"].item()
    assert lines[2] == f"Test accuracy of the best checkpoint: {test_acc:.4f}"


def test_missing_data_through_the_command_line_is_one_line(tmp_path):
    args = ["fit", "--config", "configs/fashion_mnist.yaml", f"--data.data_dir={tmp_path / 'none'}"]
    args += ["--data.download=false", f"--trainer.default_root_dir={tmp_path}"]
    result = subprocess.run(
        [sys.executable, "-m", "src.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: FashionMNIST files not found in ")
    assert str((tmp_path / "none" / "FashionMNIST" / "raw").resolve()) in last
