"""One tiny checkpoint trained by the real CLI, shared by the prediction, export and writer tests.

Trained once per test session (a few seconds): the first test module that asks for it trains it into
pytest's session folder; later modules find it there.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import FashionMNIST

from src.lightning_cli import cli_main
from tests.helpers.cli import fast_cli_args

#: FashionMNIST's class names, index = label id (what the checkpoint predicts).
CLASSES = list(FashionMNIST.classes)

#: One short epoch: the model is far from perfect, so its accuracy says something when compared.
SHORT_FIT = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--test_after_fit=false"]


@dataclass
class TrainedCheckpoint:
    """A checkpoint of `configs/fashion_mnist.yaml` trained on the tiny generated FashionMNIST.

    Args:
        ckpt: The best checkpoint of the run (its only epoch).
        val_acc: The `val/acc` the CLI recorded for it.
        out_dir: The run's output folder (`trainer.default_root_dir`).
        val_dir: The validation images (the split the CLI made), as `000.png`, `001.png`, ... in order.
        val_labels: Their labels, in that order.
        test_dir: The test images, as PNG files in the order of the test split.
        test_labels: Their labels.
    """

    ckpt: str
    val_acc: float
    out_dir: str
    val_dir: str
    val_labels: list[int]
    test_dir: str
    test_labels: list[int]


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")  # lossless: the exact training pixels


def trained_checkpoint(tmp_path_factory, data_root: Path) -> TrainedCheckpoint:
    """Train (once per session) and return the shared `TrainedCheckpoint`."""
    folder = tmp_path_factory.getbasetemp() / "trained_checkpoint"
    info = folder / "info.json"
    if not info.is_file():
        out = folder / "run"
        with contextlib.redirect_stdout(io.StringIO()):
            cli = cli_main(["fit", *fast_cli_args(data_root, out), *SHORT_FIT])
        callback = next(c for c in cli.trainer.checkpoint_callbacks if c.monitor == "val/acc")
        val_set = cli.datamodule.val_set  # a Subset of the training images
        train = FashionMNIST(str(data_root), train=True, download=False)
        test = FashionMNIST(str(data_root), train=False, download=False)
        _write_pngs(folder / "val", train.data[val_set.indices].numpy())
        _write_pngs(folder / "test", test.data.numpy())
        checkpoint = TrainedCheckpoint(
            ckpt=callback.best_model_path,
            val_acc=float(callback.best_model_score),
            out_dir=str(out),
            val_dir=str(folder / "val"),
            val_labels=train.targets[val_set.indices].tolist(),
            test_dir=str(folder / "test"),
            test_labels=test.targets.tolist(),
        )
        info.write_text(json.dumps(checkpoint.__dict__))
    return TrainedCheckpoint(**json.loads(info.read_text()))
