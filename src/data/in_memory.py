"""The in-memory data path: a whole split as one uint8 tensor, transformed a batch at a time on the device.

For datasets that fit in memory (FashionMNIST, CIFAR-10) this replaces per-sample work in worker processes
(PIL image -> tensor -> augment -> normalise, for every image) by one indexing operation per batch in the
main process, and does augmentation and normalisation on the whole batch after it reached the device
(`LightningDataModule.on_after_batch_transfer`), where the model's accelerator does the work.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset, Subset
from torch.utils.data._utils.collate import default_collate
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from src.data.base import VisionDataModule


class TensorImageDataset(Dataset):
    """Images kept as one uint8 tensor (N, C, H, W) with their int64 labels.

    `dataset[i]` is one `(image, label)`; a DataLoader asks for a whole batch at once (`__getitems__`),
    which is one indexing operation and gives `(images, labels)` already stacked. A DataLoader of your
    own over it (or over a `Subset` of it) therefore needs `collate_fn=collate_batch`, as the
    datamodule's loaders have.

    >>> data = TensorImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4))
    >>> images, labels = data.__getitems__([3, 1])
    >>> images.shape, labels.tolist()
    (torch.Size([2, 1, 2, 2]), [3, 1])

    Args:
        images: uint8 images (N, C, H, W).
        labels: Class ids (N,).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"TensorImageDataset needs uint8 images (N, C, H, W) and N labels, got {images.dtype} "
                f"{tuple(images.shape)} and {len(labels)} labels"
            )
        self.images = images
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[index], self.labels[index]


def collate_batch(batch):
    """The DataLoader's `collate_fn`: a `(images, labels)` batch from `__getitems__` passes unchanged.

    A list of single samples (a dataset without `__getitems__`) is stacked as usual.
    """
    if isinstance(batch, tuple):
        return batch
    return default_collate(batch)


def batch_augment(images: torch.Tensor, augmentations: Sequence[v2.Transform]) -> torch.Tensor:
    """Apply per-sample augmentations to a batch of images, each image drawing its own random parameters.

    The batched equivalent of applying `v2.Compose(augmentations)` to every image on its own. Supported:
    `v2.RandomCrop` with constant padding (the CIFAR recipe `RandomCrop(32, padding=4)`) and
    `v2.RandomHorizontalFlip`. Random numbers come from torch's generator on the images' device.

    >>> images = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).repeat(8, 1, 1, 1)
    >>> flipped = batch_augment(images, [v2.RandomHorizontalFlip(p=1.0)])
    >>> flipped[0, 0, 0].tolist()
    [3, 2, 1, 0]

    Args:
        images: Images (N, C, H, W), any dtype.
        augmentations: The dataset's training augmentations (`VisionDataModule.augmentations()`).

    Raises:
        ValueError: An augmentation this batched path does not implement.
    """
    for transform in augmentations:
        if isinstance(transform, v2.RandomHorizontalFlip):
            images = _random_flip(images, transform.p)
        elif isinstance(transform, v2.RandomCrop):
            images = _random_crop(images, transform)
        else:
            raise ValueError(
                f"the in-memory data path cannot apply {type(transform).__name__} to a batch; "
                "set data.in_memory=false to use the per-sample transforms"
            )
    return images


def _random_flip(images: torch.Tensor, p: float) -> torch.Tensor:
    """Flip each image left-right with probability `p` (as `v2.RandomHorizontalFlip(p)` per image).

    One `gather` with a per-image column order (reversed or not), rather than flipping the whole batch.
    """
    n, c, h, w = images.shape
    flip = torch.rand(n, device=images.device) < p
    columns = torch.arange(w, device=images.device)
    order = torch.where(flip.view(n, 1), columns.flip(0), columns)
    return images.gather(3, order.view(n, 1, 1, w).expand(n, c, h, w))


def _random_crop(images: torch.Tensor, crop: v2.RandomCrop) -> torch.Tensor:
    """Pad, then cut each image at its own uniformly drawn offset (as `crop` does per image)."""
    if crop.pad_if_needed or (crop.padding is not None and crop.padding_mode != "constant"):
        raise ValueError(
            "the in-memory data path supports RandomCrop with constant padding only; "
            "set data.in_memory=false to use the per-sample transforms"
        )
    if crop.padding is not None:
        left, right, top, bottom = crop.padding
        images = F.pad(images, [left, top, right, bottom], fill=crop.fill)
    n, _, height, width = images.shape
    crop_h, crop_w = crop.size
    device = images.device
    top = torch.randint(0, height - crop_h + 1, (n, 1), device=device)
    left = torch.randint(0, width - crop_w + 1, (n, 1), device=device)
    rows = (top + torch.arange(crop_h, device=device)).view(n, 1, crop_h, 1)
    cols = (left + torch.arange(crop_w, device=device)).view(n, 1, 1, crop_w)
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=device).view(1, -1, 1, 1)
    return images[batch, channels, rows, cols]


class InMemoryVisionDataModule(VisionDataModule):
    """A `VisionDataModule` that can keep each split in memory as a uint8 tensor (`in_memory`).

    With `in_memory` on, the DataLoaders yield uint8 batches (N, C, H, W) and `on_after_batch_transfer`
    turns them, on the device and a whole batch at once, into what the per-sample path gives: training
    batches get the dataset's `augmentations()` (each image its own random crop offset and flip), every
    batch is scaled to [0, 1] and normalised with `mean`/`std`. Validation, test and predict batches are
    only normalised. The train/val split, `train_subset` and `compute_mean_std` are the same as without it
    (same indices, same statistics). Batches are read in the main process (`num_workers` is not used): one
    batch is one indexing operation. Under DDP, Lightning still gives each process its own shard, since
    the data comes from an ordinary DataLoader.

    The in-memory path is used for the default transforms only: when `train_transform` or
    `eval_transform` is set, the datamodule uses the per-sample path (those transforms take PIL images),
    and says so once. `predict_paths` images are always read from their files.

    A subclass implements `load_tensors`, reading the files `make_dataset` reads.

    Args:
        in_memory: Keep the splits in memory as uint8 tensors and transform whole batches on the device.
        **kwargs: See `VisionDataModule`.
    """

    def __init__(self, in_memory: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.in_memory = in_memory
        self._tensor_splits: dict[bool, TensorImageDataset] = {}
        self._said_per_sample = False

    # --- what a subclass provides -------------------------------------------------------------------

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The training (`train=True`) or test split as uint8 images (N, C, H, W) and int64 labels."""
        raise NotImplementedError

    # --- datasets -----------------------------------------------------------------------------------

    @property
    def uses_tensors(self) -> bool:
        """Whether the in-memory path is in use: `in_memory` on and no user transforms."""
        return self.in_memory and self.train_transform is None and self.eval_transform is None

    def tensor_dataset(self, train: bool) -> TensorImageDataset:
        """The training or test split as a `TensorImageDataset` (read from the files once)."""
        if train not in self._tensor_splits:
            self._tensor_splits[train] = TensorImageDataset(*self.load_tensors(train))
        return self._tensor_splits[train]

    def setup(self, stage: str) -> None:
        """Build the datasets the stage needs; in memory, subsets of the splits' `TensorImageDataset`s."""
        if not self.uses_tensors:
            if self.in_memory and not self._said_per_sample:
                key = "train_transform" if self.train_transform is not None else "eval_transform"
                rank_zero_info(f"data.{key} is set: using the per-sample data path, not the in-memory one")
                self._said_per_sample = True
            super().setup(stage)
            return
        if stage in ("fit", "validate") and self.train_set is None:
            full = self.tensor_dataset(train=True)
            train_idx, val_idx = self._split_indices(len(full))
            self.train_set = Subset(full, self._subset_indices(train_idx))
            self.val_set = Subset(full, val_idx)
        if stage == "predict" and self.predict_paths is not None:
            super().setup(stage)  # image files: per-sample evaluation transforms
            return
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self.tensor_dataset(train=False)

    def _loader(self, dataset, shuffle: bool, drop_last: bool = False, **kwargs):
        if not self.uses_tensors or not isinstance(_root_dataset(dataset), TensorImageDataset):
            return super()._loader(dataset, shuffle, drop_last, **kwargs)
        # One indexing operation per batch in the main process: worker processes would only add copies.
        return super()._loader(dataset, shuffle, drop_last, collate_fn=collate_batch, num_workers=0)

    # --- batch transforms ---------------------------------------------------------------------------

    def transform_batch(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 images (N, C, H, W) -> normalised float32, with the training augmentations when `train`.

        Args:
            images: A batch from an in-memory DataLoader, on any device.
            train: Apply `augmentations()` (when `augment` is on), as for training batches.
        """
        if train and self.augment:
            images = batch_augment(images, self.augmentations())
        images = F.to_dtype(images, torch.float32, scale=True)
        return F.normalize(images, list(self.mean), list(self.std))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Transform uint8 batches (from the in-memory path) on the device; pass the others unchanged."""
        if not isinstance(batch, (list, tuple)) or batch[0].dtype != torch.uint8:
            return batch  # e.g. predict_paths images, already transformed one by one
        images, *rest = batch
        training = self.trainer is not None and self.trainer.training
        return [self.transform_batch(images, train=training), *rest]


def _root_dataset(dataset: Dataset) -> Dataset:
    """The dataset under any `Subset` wrappers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset
