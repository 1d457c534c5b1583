"""Training on the real FashionMNIST (slow; run with `pytest -m slow` when the files are present)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.lightning_cli import cli_main
from tests.helpers.cli import REPO

DATA_DIR = Path(os.environ.get("DATA_DIR", REPO / "data"))
HAS_DATA = (DATA_DIR / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_DATA, reason=f"no FashionMNIST under {DATA_DIR} (set DATA_DIR)")
def test_one_epoch_of_the_shipped_config_beats_88_percent(tmp_path):
    args = [
        "--config",
        str(REPO / "configs" / "fashion_mnist.yaml"),
        f"--data.data_dir={DATA_DIR}",
        "--data.download=false",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
    ]
    cli_main(["fit", *args, "--trainer.max_epochs=1"])
    cli = cli_main(["test", *args, "--ckpt_path=best"])
    assert cli.trainer.callback_metrics["test/acc"].item() >= 0.88
