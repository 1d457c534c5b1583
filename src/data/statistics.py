"""Per-channel image statistics, for the `mean`/`std` a datamodule normalises with."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def channel_mean_std(
    dataset: Dataset, batch_size: int = 256, num_workers: int = 0
) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each channel over all pixels of a dataset's images.

    Args:
        dataset: Yields `(image, label)` with images as float tensors (C, H, W), all of one size.
        batch_size: Images read at once.
        num_workers: DataLoader worker processes.

    Returns:
        `(mean, std)`, one value per channel.

    >>> images = [(torch.full((1, 2, 2), 0.5), 0), (torch.zeros(1, 2, 2), 1)]
    >>> channel_mean_std(images)
    ([0.25], [0.25])
    """
    total = total_sq = None
    count = 0
    for images, _ in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        pixels = images.to(torch.float64).transpose(0, 1).flatten(1)  # (C, N*H*W)
        sums, sums_sq = pixels.sum(1), (pixels**2).sum(1)
        total = sums if total is None else total + sums
        total_sq = sums_sq if total_sq is None else total_sq + sums_sq
        count += pixels.shape[1]
    if total is None:
        raise ValueError("channel_mean_std: the dataset is empty")
    assert total_sq is not None  # set together with `total`
    mean = total / count
    std = (total_sq / count - mean**2).clamp(min=0).sqrt()
    return mean.tolist(), std.tolist()
