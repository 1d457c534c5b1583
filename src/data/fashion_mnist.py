"""FashionMNIST: 70,000 grayscale 28x28 images of clothing in 10 classes (Zalando Research, MIT)."""

from __future__ import annotations

from torchvision.datasets import FashionMNIST
from torchvision.transforms import v2

from src.data.augment import check_crop_padding, crop_and_flip
from src.data.in_memory import InMemoryVisionDataModule


class FashionMNISTDataModule(InMemoryVisionDataModule):
    """FashionMNIST: 60k training images (split into train/val) and the 10k test set.

    The files are downloaded into `data_dir/FashionMNIST/raw` on first use. Offline, put the four
    official `*-ubyte.gz` (or unpacked `*-ubyte`) files in that folder yourself.
    By default the splits are kept in memory as uint8 tensors and whole batches are flipped and
    normalised on the device (`in_memory`, see `InMemoryVisionDataModule`).

    Args:
        crop_padding: Also crop each training image at a random offset after padding it by this many
            pixels on each side (a translation by up to that much, as CIFAR's recipe does with 4); 0: off.
        **kwargs: See `InMemoryVisionDataModule` (download, in_memory) and `VisionDataModule` (data_dir,
            val_size, batch_size, num_workers, ...).
    """

    dataset_cls = FashionMNIST
    files_remedy = (
        "Put the four official *-ubyte.gz files there, "
        "or point --data.data_dir at a folder that has FashionMNIST/raw/."
    )
    class_names = list(FashionMNIST.classes)
    in_channels = 1
    image_size = (28, 28)
    mean = (0.2860,)
    std = (0.3530,)

    def __init__(self, crop_padding: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crop_padding = check_crop_padding(crop_padding)

    def augmentations(self) -> list[v2.Transform]:
        return crop_and_flip(self.image_size, self.crop_padding)
