"""The base datamodule every image dataset in this template derives from."""

from __future__ import annotations

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2

from src.errors import UserInputError


class VisionDataModule(LightningDataModule):
    """Common parts of an image-classification datamodule: train/val split, loaders, transforms.

    A dataset is added by subclassing this class, setting the class attributes below and implementing
    `make_dataset` (and `prepare_data` when the files can be downloaded). The CLI links `num_classes`,
    `in_channels`, `image_size` and `class_names` into the model, so a config never states them twice.

    Training and validation samples come from two separate dataset instances (one with the training
    transforms, one with the evaluation transforms), so the validation split is never augmented.

    Args:
        data_dir: Folder that holds (or will hold, after download) the dataset files.
        val_size: Validation split taken from the training set: a number of samples, or a fraction in (0, 1).
        batch_size: Samples per batch (per process when training on several devices).
        num_workers: DataLoader worker processes; 0 loads in the main process.
        pin_memory: Page-locked host memory for faster copies to the GPU.
        persistent_workers: Keep worker processes alive between epochs (only when `num_workers > 0`).
        augment: Apply the dataset's default training augmentation.
        seed: Seed of the train/val split; the same seed gives the same split.
    """

    #: Class names, index = label id. Subclasses set it (as a class attribute or in `__init__`).
    class_names: list[str]
    #: Channels of the tensors the model receives.
    in_channels: int
    #: (height, width) of the tensors the model receives.
    image_size: tuple[int, int]
    #: Per-channel normalisation statistics of the training set.
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(
        self,
        data_dir: str = "data",
        val_size: int | float = 5000,
        batch_size: int = 128,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        augment: bool = True,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.val_size = val_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.augment = augment
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of `class_names`)."""
        return len(self.class_names)

    # --- what a subclass provides -------------------------------------------------------------------

    def make_dataset(self, train: bool, transform: v2.Transform) -> Dataset:
        """Return the training (`train=True`) or test split, reading files that are already there."""
        raise NotImplementedError

    def augmentations(self) -> list[v2.Transform]:
        """Training-only augmentations, applied to uint8 images before normalisation."""
        return []

    # --- transforms ---------------------------------------------------------------------------------

    def eval_transforms(self) -> v2.Transform:
        """PIL image -> normalised float tensor, without randomness (validation, test, predict)."""
        return v2.Compose(
            [
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    def train_transforms(self) -> v2.Transform:
        """The evaluation transforms preceded by the augmentations (when `augment` is on)."""
        if not self.augment:
            return self.eval_transforms()
        return v2.Compose([v2.ToImage(), *self.augmentations(), self.eval_transforms()])

    # --- splits -------------------------------------------------------------------------------------

    def _split_indices(self, n: int) -> tuple[list[int], list[int]]:
        """Seeded random (train, val) indices of a training set of `n` samples."""
        if isinstance(self.val_size, float):
            if not 0.0 < self.val_size < 1.0:
                raise UserInputError(f"data.val_size: a fraction must be in (0, 1), got {self.val_size}")
            n_val = round(n * self.val_size)
        else:
            n_val = self.val_size
        if not 0 < n_val < n:
            raise UserInputError(f"data.val_size: needs 0 < val_size < {n} (training samples), got {n_val}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        return perm[n_val:], perm[:n_val]

    def setup(self, stage: str) -> None:
        """Build the datasets the stage needs (`fit`, `validate`, `test` or `predict`)."""
        if stage in ("fit", "validate") and self.train_set is None:
            train_full = self.make_dataset(train=True, transform=self.train_transforms())
            eval_full = self.make_dataset(train=True, transform=self.eval_transforms())
            train_idx, val_idx = self._split_indices(len(train_full))
            self.train_set = Subset(train_full, train_idx)
            self.val_set = Subset(eval_full, val_idx)
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self.make_dataset(train=False, transform=self.eval_transforms())

    # --- loaders ------------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() for this stage before asking for its dataloader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
