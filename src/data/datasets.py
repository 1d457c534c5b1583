"""The `Dataset`s of this template (no Lightning): image files, and whole splits kept as uint8 tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset, default_collate

from src.data.decode import Decoder, image_loader


class ImageFilesDataset(Dataset):
    """Image files, each opened by `decoder` with `channels` and `image_size`, then `transform`.

    Item `i` is `(image, targets[i])`, or the image alone when there are no `targets` (images to predict).

    Args:
        paths: The image files.
        targets: The label id of each image; None for unlabelled images.
        transform: Applied to each loaded image.
        channels: 1 (grayscale) or 3 (RGB): what the images are converted to.
        image_size: (height, width) the images are resized to; None keeps each file's size.
        decoder: `pil`: images are PIL images (`load_image`), what any transform takes; `torchvision`:
            uint8 tensors (C, H, W) from `read_image`, faster, for transforms that take tensors (the
            default v2 pipelines do).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        targets: Sequence[int] | None = None,
        transform: Callable | None = None,
        channels: int = 3,
        image_size: tuple[int, int] | None = None,
        decoder: Decoder = "pil",
    ) -> None:
        if targets is not None and len(targets) != len(paths):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        self.paths = list(paths)
        self.targets = None if targets is None else list(targets)
        self.transform = transform
        #: Opens one file as the model expects it (picklable, for DataLoader workers).
        self.loader = image_loader(decoder, channels, image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = self.loader(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image if self.targets is None else (image, self.targets[index])


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

    @property
    def targets(self) -> list[int]:
        """The labels as a list (what torchvision datasets call `targets`)."""
        return self.labels.tolist()

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


def root_dataset(dataset: Dataset) -> Dataset:
    """The dataset under any `Subset` wrappers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset
