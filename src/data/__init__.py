"""LightningDataModules: `VisionDataModule` is the base, each dataset a thin subclass of it.

Names are imported on first use (PEP 562 `__getattr__`), so that importing a leaf of this package
(`src.data.images`: image decoding, `src.data.csv_lists`: CSV reading and checking) does not import
Lightning, and `src.data.csv_lists` not even torch. Configs and checkpoints name the classes as
`src.data.<Name>`, which keeps working.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from src.data.base import VisionDataModule
    from src.data.cifar10 import CIFAR10DataModule
    from src.data.csv_images import CSVImageDataModule, CSVImageDataset
    from src.data.datasets import ImageFilesDataset, TensorImageDataset
    from src.data.decode import read_image
    from src.data.fashion_mnist import FashionMNISTDataModule
    from src.data.image_files import ImageFilesDataModule
    from src.data.image_folder import ImageFolderDataModule
    from src.data.images import load_image
    from src.data.in_memory import InMemoryVisionDataModule
    from src.data.statistics import channel_mean_std

#: Each public name and the module that defines it.
_MODULES = {
    "VisionDataModule": "base",
    "CIFAR10DataModule": "cifar10",
    "CSVImageDataModule": "csv_images",
    "CSVImageDataset": "csv_images",
    "ImageFilesDataset": "datasets",
    "TensorImageDataset": "datasets",
    "read_image": "decode",
    "FashionMNISTDataModule": "fashion_mnist",
    "ImageFilesDataModule": "image_files",
    "ImageFolderDataModule": "image_folder",
    "load_image": "images",
    "InMemoryVisionDataModule": "in_memory",
    "channel_mean_std": "statistics",
}

__all__ = [
    "CIFAR10DataModule",
    "CSVImageDataModule",
    "CSVImageDataset",
    "FashionMNISTDataModule",
    "ImageFilesDataModule",
    "ImageFilesDataset",
    "ImageFolderDataModule",
    "InMemoryVisionDataModule",
    "TensorImageDataset",
    "VisionDataModule",
    "channel_mean_std",
    "load_image",
    "read_image",
]
assert sorted(__all__) == sorted(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(f"src.data.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])
