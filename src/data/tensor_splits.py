"""The uint8 data path: whole splits as uint8 tensors in memory, transformed a batch at a time on the device.

For data that fits in memory this replaces per-sample work in worker processes (decode -> tensor ->
augment -> normalise, for every image in every epoch) by one indexing operation per batch in the main
process, and does augmentation and normalisation on the whole batch after it reached the device
(`LightningDataModule.on_after_batch_transfer`), where the model's accelerator does the work. It serves
both the torchvision datasets kept in memory (`InMemoryVisionDataModule`) and decoded image files
(`ImageFilesDataModule`'s `cache`).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset
from torchvision.transforms.v2 import functional as F

from src.data.augment import batch_augment
from src.data.base import VisionDataModule
from src.data.datasets import TensorImageDataset


class TensorSplitsDataModule(VisionDataModule):
    """A `VisionDataModule` that can keep its splits in memory as uint8 tensors (when `uses_tensors`).

    On this path the DataLoaders yield uint8 batches (N, C, H, W) and `on_after_batch_transfer` turns them,
    on the device and a whole batch at once, into what the per-sample path gives: training batches get
    `training_augmentations()` (each image its own random crop offset, flip and policy), every batch is
    scaled to [0, 1] and normalised with `mean`/`std`. Validation, test and predict batches are only
    normalised. The train/val split and `train_subset` are the same as on the per-sample path (same
    indices). Batches are read in the main process (`num_workers` is not used): one batch is one
    indexing operation. Under DDP, Lightning still gives each process its own shard. `predict_paths`
    images are always read from their files.

    A subclass says when the path is in use (`uses_tensors`) and reads each split as tensors
    (`load_tensors`, and `load_val_tensors` when the validation set is its own).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._tensor_splits: dict[str, TensorImageDataset | None] = {}

    @property
    def uses_tensors(self) -> bool:
        """Whether the uint8 path is in use (False here: subclasses decide)."""
        return False

    @property
    def user_transform(self) -> str | None:
        """The config key of a transform the config sets (`data.train_transform` first), or None. The uint8
        path needs the default transforms: a config's own may expect PIL images."""
        for key in ("train_transform", "eval_transform"):
            if getattr(self, key) is not None:
                return f"data.{key}"
        return None

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The training (`train=True`) or test split as uint8 images (N, C, H, W) and int64 labels."""
        raise NotImplementedError

    def load_val_tensors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The validation set's own images and labels, or None (the default) to split them off training."""
        return None

    def tensor_dataset(self, train: bool) -> TensorImageDataset:
        """The training or test split as a `TensorImageDataset` (read once)."""
        key = "train" if train else "test"
        if key not in self._tensor_splits:
            self._tensor_splits[key] = TensorImageDataset(*self.load_tensors(train))
        split = self._tensor_splits[key]
        assert split is not None
        return split

    def val_tensor_dataset(self) -> TensorImageDataset | None:
        """The validation set's own `TensorImageDataset` (read once), or None when it is split off."""
        if "val" not in self._tensor_splits:
            tensors = self.load_val_tensors()
            self._tensor_splits["val"] = None if tensors is None else TensorImageDataset(*tensors)
        return self._tensor_splits["val"]

    def setup(self, stage: str) -> None:
        """Build the datasets the stage needs; on the uint8 path, subsets of the splits' tensors."""
        if not self.uses_tensors:
            super().setup(stage)
            return
        if stage in ("fit", "validate") and self.train_set is None:
            full = self.tensor_dataset(train=True)
            val_set: Dataset | None = self.val_tensor_dataset()
            train_idx, val_idx = self._train_val_indices(full, own_val=val_set is not None)
            self.train_set = Subset(full, train_idx)
            self.val_set = val_set if val_idx is None else Subset(full, val_idx)
        if stage == "predict" and self.predict_paths is not None:
            super().setup(stage)  # image files: per-sample evaluation transforms
            return
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self.tensor_dataset(train=False)

    def transform_batch(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 images (N, C, H, W) -> normalised float32, with the training augmentations when `train`.

        Args:
            images: A batch from a uint8 DataLoader, on any device.
            train: Apply `training_augmentations()` (when `augment` is on), as for training batches.
        """
        if train and self.augment:
            images = batch_augment(images, self.training_augmentations())
        images = F.to_dtype(images, torch.float32, scale=True)
        return F.normalize(images, list(self.mean), list(self.std))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Transform uint8 batches (from the uint8 path) on the device, then mix them when asked."""
        if isinstance(batch, (list, tuple)) and batch[0].dtype == torch.uint8:
            images, *rest = batch
            training = self.trainer is not None and self.trainer.training
            batch = [self.transform_batch(images, train=training), *rest]
        # Else e.g. predict_paths images, already transformed one by one. Then MixUp/CutMix, if on.
        return super().on_after_batch_transfer(batch, dataloader_idx)
