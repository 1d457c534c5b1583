"""FashionMNIST: 70,000 grayscale 28x28 images of clothing in 10 classes (Zalando Research, MIT)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST
from torchvision.transforms import v2

from src.data.base import missing_files_error
from src.data.in_memory import InMemoryVisionDataModule


class FashionMNISTDataModule(InMemoryVisionDataModule):
    """FashionMNIST: 60k training images (split into train/val) and the 10k test set.

    The files are downloaded into `data_dir/FashionMNIST/raw` on first use. Offline, put the four
    official `*-ubyte.gz` (or unpacked `*-ubyte`) files in that folder yourself.
    By default the splits are kept in memory as uint8 tensors and whole batches are flipped and
    normalised on the device (`in_memory`, see `InMemoryVisionDataModule`).

    Args:
        download: Download the files when they are missing.
        **kwargs: See `InMemoryVisionDataModule` (in_memory) and `VisionDataModule` (data_dir, val_size,
            batch_size, num_workers, ...).
    """

    class_names = list(FashionMNIST.classes)
    in_channels = 1
    image_size = (28, 28)
    mean = (0.2860,)
    std = (0.3530,)

    def __init__(self, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.download = download

    def prepare_data(self) -> None:
        """Download both splits if they are missing (runs once per node, before `setup`)."""
        raw = Path(self.data_dir) / "FashionMNIST" / "raw"
        try:
            for train in (True, False):
                FashionMNIST(self.data_dir, train=train, download=self.download)
        except (RuntimeError, OSError) as err:
            raise missing_files_error(
                "FashionMNIST",
                raw,
                self.download,
                err,
                "Put the four official *-ubyte.gz files there, "
                "or point --data.data_dir at a folder that has FashionMNIST/raw/.",
            ) from err

    def make_dataset(self, train: bool, transform: Callable) -> FashionMNIST:
        return FashionMNIST(self.data_dir, train=train, transform=transform, download=False)

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = FashionMNIST(self.data_dir, train=train, download=False)
        return dataset.data.unsqueeze(1), dataset.targets

    def augmentations(self) -> list[v2.Transform]:
        return [v2.RandomHorizontalFlip()]
