"""Shared fixtures: tiny generated datasets and a fast trainer configuration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import fixtures.py

from fixtures import make_fashion_mnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Tests run in parallel processes (pytest-xdist, `-n` in pyproject.toml): one thread each, so that
    # they do not fight over the cores; the tests' models are far too small to gain from more.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory) -> Path:
    """A folder with a tiny FashionMNIST (320 train, 80 test images) in the real IDX format."""
    return make_fashion_mnist(tmp_path_factory.mktemp("data"))


def fast_cli_args(data_root: Path, out_dir: Path) -> list[str]:
    """CLI arguments that make a run of configs/fashion_mnist.yaml take seconds, writing into out_dir."""
    return [
        "--config",
        str(REPO / "configs" / "fashion_mnist.yaml"),
        f"--data.data_dir={data_root}",
        "--data.val_size=80",
        "--data.batch_size=32",
        "--data.num_workers=0",
        "--data.download=false",
        f"--trainer.default_root_dir={out_dir}",
        f"--trainer.logger.init_args.save_dir={out_dir / 'logs'}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
    ]


def run_cli_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """Run `python -m src.cli ARGS` in this process (its `main()`, which must exit, never with a traceback):
    its exit status and everything it printed."""
    from src.cli import main

    monkeypatch.setattr(sys, "argv", ["python -m src.cli", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return exit_info.value.code, output


def error_lines(output: str) -> list[str]:
    """The `error:` lines of a command's output."""
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.fixture
def fast_args(fashion_mnist_root, tmp_path) -> list[str]:
    """`fast_cli_args` writing into this test's tmp_path."""
    return fast_cli_args(fashion_mnist_root, tmp_path)


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """Keep each test's changes to environment variables and the working directory to itself."""
    environ, cwd = dict(os.environ), os.getcwd()
    yield
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)


@pytest.fixture
def overlay(tmp_path):
    """Write a YAML overlay config into tmp_path and return the `--config` arguments for it."""

    def write(text: str, name: str = "overlay.yaml") -> list[str]:
        path = tmp_path / name
        path.write_text(text)
        return ["--config", str(path)]

    return write


@pytest.fixture(scope="session")
def trained(fashion_mnist_root, tmp_path_factory):
    """A tiny checkpoint trained once by the real CLI, with its validation and test images as PNG files."""
    from trained_checkpoint import trained_checkpoint  # it imports this module

    return trained_checkpoint(tmp_path_factory, fashion_mnist_root)
