"""CIFAR-10: 60,000 colour 32x32 images of 10 classes (Krizhevsky, 2009)."""

from __future__ import annotations

import pickle
from pathlib import Path

from torchvision.datasets import CIFAR10
from torchvision.transforms import v2

from src.data.augment import crop_and_flip
from src.data.in_memory import InMemoryVisionDataModule


class CIFAR10DataModule(InMemoryVisionDataModule):
    """CIFAR-10: 50k training images (split into train/val) and the 10k test set.

    The archive is downloaded and extracted into `data_dir/cifar-10-batches-py` on first use. Offline,
    extract the official `cifar-10-python.tar.gz` into `data_dir` yourself (it unpacks to that folder).
    Training augmentation: a random 32x32 crop of the image padded by 4 pixels, and horizontal flips.
    By default the splits are kept in memory as uint8 tensors and whole batches are augmented and
    normalised on the device (`in_memory`, see `InMemoryVisionDataModule`).

    Args:
        **kwargs: See `InMemoryVisionDataModule` (download, in_memory) and `VisionDataModule` (data_dir,
            val_size, batch_size, num_workers, ...).
    """

    dataset_cls = CIFAR10
    files_remedy = (
        f"Extract the official {CIFAR10.filename} into {{data_dir}} (it unpacks to {CIFAR10.base_folder}/), "
        f"or point --data.data_dir at a folder that has {CIFAR10.base_folder}/."
    )
    class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    in_channels = 3
    image_size = (32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def bad_file(self) -> Path | None:
        """The first batch (or meta) file that is not a pickle of the keys torchvision reads."""
        keys: dict[str, tuple[str, ...]] = {
            name: ("data", "labels") for name, _ in CIFAR10.train_list + CIFAR10.test_list
        }
        keys[CIFAR10.meta["filename"]] = (CIFAR10.meta["key"],)
        for name, needed in keys.items():
            path = self.files_folder() / name
            try:
                with path.open("rb") as file:
                    content = pickle.load(file, encoding="latin1")
                if not isinstance(content, dict) or not all(key in content for key in needed):
                    return path
            except Exception:
                return path
        return None

    def augmentations(self) -> list[v2.Transform]:
        return crop_and_flip(self.image_size, padding=4)
