"""Class-balanced sampling of training images, sharded across DDP processes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch.utils.data import Dataset, DistributedSampler

from src.errors import UserInputError


class ClassBalancedSampler(DistributedSampler):
    """Training indices drawn with replacement, each with probability 1 / (its class's size), so that every
    class is drawn equally often in expectation, however rare it is.

    Each epoch makes one draw of `len(targets)` indices (rounded up to a multiple of `num_replicas`) from
    a generator seeded with `seed + epoch`, the same in every process, and process `rank` takes every
    `num_replicas`-th of them: under DDP each process draws its own shard, and together they make the
    one draw. A `DistributedSampler` (Lightning keeps those under DDP instead of replacing them), with its
    `set_epoch`; the order depends only on the seed and the epoch, so a resumed run draws the same.

    >>> sampler = ClassBalancedSampler([0] * 90 + [1] * 10, seed=0)
    >>> draws = torch.tensor([0] * 90 + [1] * 10)[list(sampler)]
    >>> len(draws), 35 < int(draws.sum()) < 65  # about half of the draws are of the rare class
    (100, True)

    Args:
        targets: The class id of each training image.
        num_replicas: Processes sharing the draw (the DDP world size).
        rank: This process's rank among them.
        seed: Seed of the draws.

    Raises:
        UserInputError: No training images.
    """

    def __init__(self, targets: Sequence[int], num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if not len(targets):
            raise UserInputError("data.sampler: balanced sampling needs training images, found none")
        labels = torch.as_tensor(list(targets), dtype=torch.int64)
        indices = cast(Dataset, range(len(labels)))  # only its length is used
        super().__init__(indices, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.weights = 1.0 / torch.bincount(labels).double()[labels]

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator)
        return iter(draws[self.rank : self.total_size : self.num_replicas].tolist())
