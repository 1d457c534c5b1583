"""CIFAR-shaped random data for throughput benchmarks: no files, no download, the real data path.

`SyntheticCIFAR10` is `CIFAR10DataModule` with its splits made of random uint8 images instead of the
files, so a benchmark measures the template's in-memory path, augmentation and model on data of CIFAR-10's
shape (3x32x32, 10 classes) anywhere:

    python -m src.cli fit --config configs/cifar10_resnet18.yaml --data benchmarks.synthetic.SyntheticCIFAR10
"""

from __future__ import annotations

import torch

from src.data import CIFAR10DataModule


class SyntheticCIFAR10(CIFAR10DataModule):
    """CIFAR-10's shape, classes and augmentation over seeded random images (accuracy means nothing).

    Args:
        num_train: Images in the training split (before the validation split is taken from it).
        num_test: Images in the test split.
        **kwargs: See `CIFAR10DataModule`.
    """

    def __init__(self, num_train: int = 20000, num_test: int = 2000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_train, self.num_test = num_train, num_test

    def prepare_data(self) -> None:
        """Nothing to download."""

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.num_train if train else self.num_test
        generator = torch.Generator().manual_seed(int(train))
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (n,), generator=generator)
