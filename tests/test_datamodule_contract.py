"""The contract every datamodule keeps: split sizes, batch shapes and dtypes, labels in range, its facts.

A new dataset adds one entry to `DATAMODULES` (a function that writes a tiny copy of its files in the real
format and returns the datamodule, and the split sizes it must give).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision.datasets.cifar

from src.data import (
    CIFAR10DataModule,
    CSVImageDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    VisionDataModule,
)
from tests.helpers.files import make_cifar10, make_fashion_mnist, make_image_folder, write_csv

BATCH = 8
CLASSES = ("cat", "dog", "frog")
LOADER = {"batch_size": BATCH, "num_workers": 0}


def fashion_mnist(root: Path, in_memory: bool) -> VisionDataModule:
    make_fashion_mnist(root)  # 320 train, 80 test
    return FashionMNISTDataModule(
        data_dir=str(root), val_size=80, download=False, in_memory=in_memory, **LOADER
    )


def cifar10(root: Path, in_memory: bool) -> VisionDataModule:
    make_cifar10(root, n_per_batch=40, n_test=40)  # 200 train, 40 test
    return CIFAR10DataModule(data_dir=str(root), val_size=50, download=False, in_memory=in_memory, **LOADER)


def csv_images(root: Path, channels: int = 3, image_size: tuple[int, int] = (20, 16)) -> VisionDataModule:
    listed = make_image_folder(root / "images", CLASSES, n_per_class=8)  # 24 images of mixed sizes
    write_csv(root / "train.csv", listed, header=("path", "label"))
    write_csv(root / "test.csv", listed[:9])
    return CSVImageDataModule(
        annotations_file=str(root / "train.csv"),
        test_annotations_file=str(root / "test.csv"),
        img_dir=str(root / "images"),
        channels=channels,
        image_size=image_size,
        val_size=6,
        **LOADER,
    )


def image_folder(root: Path) -> VisionDataModule:
    make_image_folder(root / "train", CLASSES, n_per_class=8)
    make_image_folder(root / "test", CLASSES, n_per_class=2)
    return ImageFolderDataModule(
        root=str(root / "train"), test_root=str(root / "test"), channels=1, image_size=(12, 14), val_size=0.25
    )


#: name: (make(root) -> datamodule, (train, val, test) sizes)
DATAMODULES: dict[str, tuple[Callable[[Path], VisionDataModule], tuple[int, int, int]]] = {
    "FashionMNIST in memory": (lambda root: fashion_mnist(root, True), (240, 80, 80)),
    "FashionMNIST per sample": (lambda root: fashion_mnist(root, False), (240, 80, 80)),
    "CIFAR-10 in memory": (lambda root: cifar10(root, True), (150, 50, 40)),
    "CIFAR-10 per sample": (lambda root: cifar10(root, False), (150, 50, 40)),
    "CSV images": (csv_images, (18, 6, 9)),
    "CSV images, 1 channel": (lambda root: csv_images(root, 1, (20, 24)), (18, 6, 9)),
    "image folder": (image_folder, (18, 6, 6)),
}


@pytest.fixture(autouse=True)
def _no_md5_check(monkeypatch):
    """Generated CIFAR-10 files cannot have the official MD5 sums: check only that they exist."""
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path)
    )


@pytest.mark.parametrize("name", list(DATAMODULES))
def test_datamodule_contract(name, tmp_path):
    make, sizes = DATAMODULES[name]
    dm = make(tmp_path)
    # Facts the CLI links into the model, known before any file is read for a split.
    assert dm.num_classes == len(dm.class_names) >= 2
    assert len(dm.mean) == len(dm.std) == dm.in_channels in (1, 3)
    assert len(dm.image_size) == 2
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == sizes
    assert set(dm.train_set.indices).isdisjoint(getattr(dm.val_set, "indices", []))
    loaders = {"train": dm.train_dataloader(), "val": dm.val_dataloader(), "test": dm.test_dataloader()}
    for split, loader in loaders.items():
        seen = 0
        for batch in loader:
            x, y = dm.on_after_batch_transfer(batch, 0)  # what the model receives (in-memory: normalised)
            assert x.shape[1:] == (dm.in_channels, *dm.image_size) and x.dtype == torch.float32, split
            assert y.shape == (len(x),) and y.dtype == torch.int64, split
            assert y.min() >= 0 and y.max() < dm.num_classes, split
            assert x.min() < 0  # normalised, not in [0, 1]
            # Images in [0, 1] normalised with the datamodule's mean/std, channel by channel.
            mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (dm.mean, dm.std))
            assert (x >= -mean / std - 1e-5).all() and (x <= (1 - mean) / std + 1e-5).all(), split
            seen += len(x)
        assert seen == len(loader.dataset), split
