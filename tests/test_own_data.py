"""The README's own-data commands, exactly as written, on generated data of other sizes and channel counts.

`configs/csv_images.yaml` and `configs/image_folder.yaml` must take anyone's images: giving the training
data is enough, and nothing of the bundled sample (its validation/test lists, its 28 px grayscale
transforms) stays behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data import ImageFolderDataModule
from src.errors import UserInputError
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO
from tests.helpers.files import write_csv

CLASSES = ("cat", "dog")
#: One batch of fit and test, nothing written; small batches for the small generated sets.
QUICK = ["--config", str(REPO / "configs/trainer/debug.yaml"), "--data.batch_size=4", "--data.num_workers=0"]
QUICK += ["--trainer.enable_progress_bar=false"]


def make_photos(
    root: Path, size: tuple[int, int], channels: int, n_per_class: int = 5
) -> list[tuple[str, str]]:
    """`root/<class>/<k>.png` images of `size` (height, width) with `channels`; (relative path, class)."""
    rng = np.random.default_rng(0)
    rows = []
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n_per_class):
            shape = (*size, 3) if channels == 3 else size
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{k}.png")
            rows.append((f"{name}/{k}.png", name))
    return rows


def my_data(tmp_path: Path, size: tuple[int, int], channels: int) -> Path:
    """`my_data/` as the README's commands expect it: images/ with train/val/test CSVs, and train/, val/,
    test/ class folders."""
    root = tmp_path / "my_data"
    rows = make_photos(root / "images", size, channels)
    write_csv(root / "train.csv", rows[0:3] + rows[5:8])
    write_csv(root / "val.csv", rows[3:4] + rows[8:9])
    write_csv(root / "test.csv", rows[4:5] + rows[9:10])
    for split in ("train", "val", "test"):
        make_photos(root / split, size, channels, n_per_class=4)
    return root


def run(tmp_path: Path, command: str):
    """Run a README command (`python -m src.cli ...`) from `tmp_path`, with `QUICK` added."""
    args = command.split()[3:]  # after `python -m src.cli`
    args = [str(REPO / a) if a.startswith("configs/") else a for a in args]
    return cli_main([*args, *QUICK, f"--trainer.default_root_dir={tmp_path / 'logs'}"])


@pytest.mark.parametrize(("size", "channels"), [((48, 40), 3), ((16, 16), 1)])
def test_csv_images_with_the_training_list_only(tmp_path, monkeypatch, size, channels):
    my_data(tmp_path, size, channels)
    monkeypatch.chdir(tmp_path)
    cli = run(
        tmp_path,
        "python -m src.cli fit --config configs/csv_images.yaml "
        "--data.annotations_file my_data/train.csv --data.img_dir my_data/images",
    )
    assert cli.trainer.global_step == 1
    assert cli.datamodule.class_names == list(CLASSES) and len(cli.datamodule.val_set) == 1  # 10 % of 6
    assert "test/acc" not in cli.trainer.callback_metrics  # no test list given, none of the sample's
    assert tuple(cli.datamodule.train_set[0][0].shape) == (3, 32, 32)  # the config's channels and size


@pytest.mark.parametrize(("size", "channels"), [((48, 40), 3), ((16, 16), 1)])
def test_csv_images_with_validation_and_test_lists_at_the_images_size(tmp_path, monkeypatch, size, channels):
    my_data(tmp_path, size, channels)
    monkeypatch.chdir(tmp_path)
    per_channel = " ".join(["0.5"] * channels)
    cli = run(
        tmp_path,
        "python -m src.cli fit --config configs/csv_images.yaml "
        "--data.annotations_file my_data/train.csv --data.val_annotations_file my_data/val.csv "
        "--data.test_annotations_file my_data/test.csv --data.img_dir my_data/images "
        f"--data.channels {channels} --data.image_size [{size[0]},{size[1]}] "
        f"--data.mean [{per_channel.replace(' ', ',')}] --data.std [{per_channel.replace(' ', ',')}]",
    )
    assert "test/acc" in cli.trainer.callback_metrics
    image, _ = cli.datamodule.train_set[0]
    assert tuple(image.shape) == (channels, *size)  # the random crop follows image_size


@pytest.mark.parametrize(("size", "channels"), [((48, 40), 3), ((16, 16), 1)])
def test_image_folder_with_the_training_folder_only(tmp_path, monkeypatch, size, channels):
    my_data(tmp_path, size, channels)
    monkeypatch.chdir(tmp_path)
    cli = run(tmp_path, "python -m src.cli fit --config configs/image_folder.yaml --data.root my_data/train")
    assert cli.trainer.global_step == 1 and "test/acc" not in cli.trainer.callback_metrics
    assert tuple(cli.datamodule.train_set[0][0].shape) == (1, 28, 28)  # the config's channels and size


def test_image_folder_with_validation_and_test_folders_at_another_size(tmp_path, monkeypatch):
    my_data(tmp_path, (48, 40), 3)
    monkeypatch.chdir(tmp_path)
    cli = run(
        tmp_path,
        "python -m src.cli fit --config configs/image_folder.yaml --data.root my_data/train "
        "--data.val_root my_data/val --data.test_root my_data/test --data.channels 3 "
        "--data.image_size [48,40] --data.mean [0.5,0.5,0.5] --data.std [0.25,0.25,0.25]",
    )
    assert "test/acc" in cli.trainer.callback_metrics
    assert tuple(cli.datamodule.train_set[0][0].shape) == (3, 48, 40)
    assert cli.model.hparams.in_channels == 3 and tuple(cli.model.hparams.image_size) == (48, 40)


def test_a_negative_crop_padding_is_refused_by_name(tmp_path):
    with pytest.raises(UserInputError, match=r"^data.crop_padding: must be 0 or more pixels, got -1$"):
        ImageFolderDataModule(root=str(tmp_path), crop_padding=-1)


def test_the_validation_split_is_stratified_by_class(tmp_path):
    """10:1 imbalanced folders: the 10 % validation split keeps the ratio (a random one may miss the rare
    class); `stratify: false` gives the plain random split."""
    for name, count in (("common", 100), ("rare", 10)):
        (tmp_path / name).mkdir()
        for k in range(count):
            Image.new("L", (4, 4), k).save(tmp_path / name / f"{k}.png")
    data = ImageFolderDataModule(
        root=str(tmp_path), image_size=(4, 4), channels=1, val_size=11, num_workers=0
    )
    data.setup("fit")
    val_labels = [data.val_set.dataset.targets[i] for i in data.val_set.indices]
    assert sorted(val_labels) == [0] * 10 + [1]
    train_labels = [data.train_set.dataset.targets[i] for i in data.train_set.indices]
    assert sorted(train_labels) == [0] * 90 + [1] * 9
    plain = ImageFolderDataModule(
        root=str(tmp_path), image_size=(4, 4), channels=1, val_size=11, stratify=False
    )
    plain.setup("fit")
    assert sorted(plain.val_set.indices) != sorted(data.val_set.indices)
