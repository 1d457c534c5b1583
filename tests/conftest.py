"""Shared fixtures: tiny generated datasets, a fast trainer configuration, the trained checkpoint, an
offline torch hub."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch

from tests.helpers.checkpoint import TrainedCheckpoint, trained_checkpoint
from tests.helpers.cli import fast_cli_args
from tests.helpers.files import make_fashion_mnist

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Tests run in parallel processes (pytest-xdist, `-n` in pyproject.toml): one thread each, so that
    # they do not fight over the cores; the tests' models are far too small to gain from more.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory) -> Path:
    """A folder with a tiny FashionMNIST (320 train, 80 test images) in the real IDX format."""
    return make_fashion_mnist(tmp_path_factory.mktemp("data"))


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
def trained(fashion_mnist_root, tmp_path_factory) -> TrainedCheckpoint:
    """A tiny checkpoint trained once by the real CLI, with its validation and test images as PNG files."""
    return trained_checkpoint(tmp_path_factory, fashion_mnist_root)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub folder, and downloads that fail as they do without a network."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub"
