"""Torchvision datasets kept in memory as uint8 tensors (FashionMNIST, CIFAR-10): the uint8 path of
`src.data.tensor_splits`, fed straight from the dataset's `data` array.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset
from torchvision.datasets import VisionDataset

from src.data.tensor_splits import TensorSplitsDataModule
from src.errors import UserInputError, missing_files_error, one_line


class InMemoryVisionDataModule(TensorSplitsDataModule):
    """A torchvision dataset whose splits can be kept in memory as uint8 tensors (`in_memory`).

    With `in_memory` on, the splits are the dataset's `data` arrays and whole batches are augmented and
    normalised on the device (see `TensorSplitsDataModule`); `compute_mean_std` gives the same statistics
    either way. The in-memory path is used for the default transforms only: when `train_transform` or
    `eval_transform` is set, the datamodule uses the per-sample path (those transforms take PIL images),
    and says so once.

    A dataset is a thin subclass: it names its torchvision `dataset_cls`, its class names, channels,
    size, mean/std and training `augmentations()`; downloading, the file checks, the per-sample datasets
    and the uint8 tensors come from here (see `FashionMNISTDataModule`).

    Args:
        download: Download the files when they are missing.
        in_memory: Keep the splits in memory as uint8 tensors and transform whole batches on the device.
        **kwargs: See `VisionDataModule`.
    """

    #: The torchvision dataset class (`FashionMNIST`, `CIFAR10`, `MNIST`, ...), called as
    #: `dataset_cls(data_dir, train=..., transform=..., download=...)`; `data`, `targets` become tensors.
    dataset_cls: type[VisionDataset]
    #: How to put the files in place by hand, for the error shown when they are missing; `{data_dir}` is
    #: replaced by the resolved `data_dir`.
    files_remedy: str = "Put the dataset's files there, or point --data.data_dir at a folder that has them."

    def __init__(self, download: bool = True, in_memory: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.download = download
        self.in_memory = in_memory
        self._said_per_sample = False

    # --- files --------------------------------------------------------------------------------------

    def files_folder(self) -> Path:
        """Where the dataset's files are (`data_dir/<base_folder>`, or `data_dir/<Name>/raw` for MNISTs)."""
        folder = getattr(self.dataset_cls, "base_folder", None) or f"{self.dataset_cls.__name__}/raw"
        return Path(self.data_dir) / folder

    def bad_file(self) -> Path | None:
        """The file that cannot be read, when the dataset's files are there but one of them is damaged
        (None: unknown; the error then names the folder). Subclasses that know their files override it."""
        return None

    def open_dataset(self, train: bool, transform: Callable | None = None, download: bool = False):
        """`dataset_cls` of the split, with every way its files can be missing or damaged as one line.

        Raises:
            UserInputError: The files are missing (and not downloaded), or one of them cannot be read.
        """
        name = self.dataset_cls.__name__
        try:
            return self.dataset_cls(self.data_dir, train=train, transform=transform, download=download)
        except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found or corrupted"
            remedy = self.files_remedy.format(data_dir=Path(self.data_dir).resolve())
            raise missing_files_error(name, self.files_folder(), self.download, err, remedy) from err
        except Exception as err:  # files that are there but do not parse (KeyError, UnpicklingError, ...)
            where = self.bad_file() or self.files_folder()
            raise UserInputError(
                f"{name}: cannot read {where}: the file is damaged or not in the {name} format "
                f"({type(err).__name__}: {one_line(err)})"
            ) from err

    def prepare_data(self) -> None:
        """Download both splits if they are missing (runs once per node, before `setup`)."""
        for train in (True, False):
            self.open_dataset(train, download=self.download)

    def make_dataset(self, train: bool, transform: Callable) -> Dataset:
        return self.open_dataset(train, transform)

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The training (`train=True`) or test split as uint8 images (N, C, H, W) and int64 labels.

        Reads the torchvision dataset's `data`: (N, H, W) grayscale or (N, H, W, C) images, as a tensor
        or a NumPy array.
        """
        dataset = self.open_dataset(train)
        images = torch.as_tensor(dataset.data)
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        return images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64)

    # --- datasets ---------------------------------------------------------------------------------

    @property
    def uses_tensors(self) -> bool:
        """Whether the in-memory path is in use: `in_memory` on and no user transforms."""
        return self.in_memory and self.user_transform is None

    def setup(self, stage: str) -> None:
        """Build the datasets the stage needs; says once when user transforms turn the in-memory path off."""
        if self.in_memory and not self.uses_tensors and not self._said_per_sample:
            rank_zero_info(
                f"{self.user_transform} is set: using the per-sample data path, not the in-memory one"
            )
            self._said_per_sample = True
        super().setup(stage)
