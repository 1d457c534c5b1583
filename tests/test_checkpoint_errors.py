"""`--ckpt_path` with a bad file stops before any work with one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.lightning_cli import cli_main
from tests.helpers.cli import error_lines, fast_cli_args, run_cli_main

QUICK = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1",
    "--test_after_fit=false",
]


@pytest.fixture(scope="module")
def checkpoint(fashion_mnist_root, tmp_path_factory) -> Path:
    """A real `last.ckpt` of configs/fashion_mnist.yaml (ConvNet), trained for 2 steps."""
    out = tmp_path_factory.mktemp("trained")
    cli_main(["fit", *fast_cli_args(fashion_mnist_root, out), *QUICK])
    return next(out.rglob("last.ckpt"))


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, list[str]]:
    """`run_cli_main`, keeping the `error:` lines of the output."""
    status, output = run_cli_main(monkeypatch, capsys, args)
    return status, error_lines(output)


def truncated(checkpoint: Path, tmp_path: Path) -> Path:
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    return path


def text_file(checkpoint: Path, tmp_path: Path) -> Path:
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint\n")
    return path


def pickled_object(checkpoint: Path, tmp_path: Path) -> Path:
    """The classic `torch.save(model)`: a whole pickled object, which only full unpickling can load."""
    path = tmp_path / "whole_model.ckpt"
    torch.save(torch.nn.Linear(2, 2), path)
    return path


def weights_only_file(checkpoint: Path, tmp_path: Path) -> Path:
    path = tmp_path / "weights.pth"
    torch.save(torch.load(checkpoint, weights_only=True)["state_dict"], path)
    return path


def other_classes(checkpoint: Path, tmp_path: Path) -> Path:
    state = torch.load(checkpoint, weights_only=True)
    state["hyper_parameters"]["class_names"] = [f"class{i}" for i in range(10)]
    path = tmp_path / "other_classes.ckpt"
    torch.save(state, path)
    return path


def missing(checkpoint: Path, tmp_path: Path) -> Path:
    return tmp_path / "missing.ckpt"


BAD_FILES = {
    "corrupt (truncated)": (
        truncated,
        "--ckpt_path: cannot load {p}: a damaged PyTorch file, corrupt or truncated? (RuntimeError: "
        "PytorchStreamReader failed reading zip archive: failed finding central directory)",
    ),
    "not a checkpoint (text)": (
        text_file,
        "--ckpt_path: cannot load {p}: not a PyTorch file (not written by torch.save)",
    ),
    "a pickled object": (
        pickled_object,
        "--ckpt_path: cannot load {p}: it holds pickled Python objects (torch.nn.modules.linear.Linear), "
        "e.g. a whole model saved with `torch.save(model)`, which are not loaded because unpickling can run "
        "code; save `model.state_dict()` instead; --weights_only false loads it if you trust the file",
    ),
    "weights only, no training state": (
        weights_only_file,
        "--ckpt_path: {p} is not a Lightning checkpoint (no state_dict)",
    ),
    "other class names": (
        other_classes,
        "--ckpt_path: {p} was trained on classes [class0, class1, class2, class3, class4, ... (10 in all)], "
        "the data has [T-shirt/top, Trouser, Pullover, Dress, Coat, ... (10 in all)]",
    ),
    "missing": (missing, "--ckpt_path: file {p} not found"),
}


@pytest.mark.parametrize("make, expected", BAD_FILES.values(), ids=BAD_FILES.keys())
@pytest.mark.parametrize("subcommand", ["fit", "test"])
def test_bad_checkpoint_file(
    subcommand, make, expected, checkpoint, fashion_mnist_root, tmp_path, monkeypatch, capsys
):
    path = make(checkpoint, tmp_path)
    out = tmp_path / "run"
    args = [subcommand, *fast_cli_args(fashion_mnist_root, out), *QUICK, f"--ckpt_path={path}"]
    status, errors = run_main(monkeypatch, capsys, args)
    assert status == 1
    assert len(errors) == 1 and errors[0].startswith(f"error: {expected.format(p=path)}")
    assert not out.exists()  # stopped before writing logs or checkpoints


def test_checkpoint_of_another_network(checkpoint, fashion_mnist_root, tmp_path, monkeypatch, capsys):
    """A ConvNet checkpoint without hyperparameters (so the CLI cannot rebuild its network from them),
    given to a config that builds a LeNet."""
    state = torch.load(checkpoint, weights_only=True)
    del state["hyper_parameters"]
    path = tmp_path / "convnet.ckpt"
    torch.save(state, path)
    out = tmp_path / "run"
    args = ["validate", *fast_cli_args(fashion_mnist_root, out), f"--ckpt_path={path}"]
    args += ["--model.init_args.backbone", "src.models.components.LeNet"]
    status, errors = run_main(monkeypatch, capsys, args)
    assert status == 1
    assert len(errors) == 1
    assert errors[0].startswith(f"error: --ckpt_path: {path} holds a different network than the config")
    assert "missing keys: backbone." in errors[0] and "unexpected keys: backbone." in errors[0]
    assert not out.exists()


def test_hyperparameters_that_do_not_parse(checkpoint, fashion_mnist_root, tmp_path, monkeypatch, capsys):
    """The CLI rebuilds the model from the checkpoint's hyperparameters; an unknown one names the file."""
    state = torch.load(checkpoint, weights_only=True)
    state["hyper_parameters"]["dropout_rate"] = 0.5
    path = tmp_path / "renamed_option.ckpt"
    torch.save(state, path)
    args = ["test", *fast_cli_args(fashion_mnist_root, tmp_path / "run"), f"--ckpt_path={path}"]
    status, errors = run_main(monkeypatch, capsys, args)
    assert status == 1
    assert errors == [
        f"error: --ckpt_path: {path}: its hyperparameters do not fit this config: "
        "model.init_args: unknown option(s) dropout_rate of src.models.ImageClassifier"
    ]


def test_a_good_checkpoint_passes_the_checks(checkpoint, fashion_mnist_root, tmp_path):
    cli_main(["test", *fast_cli_args(fashion_mnist_root, tmp_path), *QUICK, f"--ckpt_path={checkpoint}"])
