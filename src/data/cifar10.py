"""CIFAR-10: 60,000 colour 32x32 images of 10 classes (Krizhevsky, 2009)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.datasets import CIFAR10
from torchvision.transforms import v2

from src.data.base import missing_files_error
from src.data.in_memory import InMemoryVisionDataModule


class CIFAR10DataModule(InMemoryVisionDataModule):
    """CIFAR-10: 50k training images (split into train/val) and the 10k test set.

    The archive is downloaded and extracted into `data_dir/cifar-10-batches-py` on first use. Offline,
    extract the official `cifar-10-python.tar.gz` into `data_dir` yourself (it unpacks to that folder).
    Training augmentation: a random 32x32 crop of the image padded by 4 pixels, and horizontal flips.
    By default the splits are kept in memory as uint8 tensors and whole batches are augmented and
    normalised on the device (`in_memory`, see `InMemoryVisionDataModule`).

    Args:
        download: Download the files when they are missing.
        **kwargs: See `InMemoryVisionDataModule` (in_memory) and `VisionDataModule` (data_dir, val_size,
            batch_size, num_workers, ...).
    """

    class_names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    in_channels = 3
    image_size = (32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(self, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.download = download

    def prepare_data(self) -> None:
        """Download and extract the archive if the files are missing (once per node, before `setup`)."""
        try:
            for train in (True, False):
                CIFAR10(self.data_dir, train=train, download=self.download)
        except (RuntimeError, OSError) as err:
            raise missing_files_error(
                "CIFAR-10",
                Path(self.data_dir) / CIFAR10.base_folder,
                self.download,
                err,
                f"Extract the official {CIFAR10.filename} into {Path(self.data_dir).resolve()} "
                f"(it unpacks to {CIFAR10.base_folder}/), "
                f"or point --data.data_dir at a folder that has {CIFAR10.base_folder}/.",
            ) from err

    def make_dataset(self, train: bool, transform: Callable) -> CIFAR10:
        return CIFAR10(self.data_dir, train=train, transform=transform, download=False)

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = CIFAR10(self.data_dir, train=train, download=False)
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> NCHW
        return images, torch.tensor(dataset.targets, dtype=torch.int64)

    def augmentations(self) -> list[v2.Transform]:
        return [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]
