"""A training DataLoader that resumes mid-epoch where a killed run stopped, with the same batches.

Lightning restores a run's progress from a checkpoint (epoch, batches done) but not where the data
iterator was: with a plain shuffled DataLoader a run resumed mid-epoch draws a new order and sees some
images twice and others never. Lightning asks a *stateful* loader (one with `state_dict` /
`load_state_dict`) for its position instead; `ResumableDataLoader` is one:

- `ResumableSampler` shuffles with a permutation that depends only on `seed` and the epoch (Lightning
  calls `set_epoch` before each epoch), not on the global random state, so a resumed run can redo it;
- the loader counts the batches it has handed out this epoch; a checkpoint stores that count, and after
  a resume the sampler skips those samples, so training goes on with exactly the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """A random order of `range(num_samples)` fixed by `seed` and the epoch; can start part-way in.

    >>> sampler = ResumableSampler(6, seed=0)
    >>> order = list(sampler)
    >>> sampler.resume_at(epoch=0, start=4)
    >>> list(sampler) == order[4:]
    True

    Args:
        num_samples: Size of the dataset.
        seed: Seed of the order; epoch `e` uses the permutation of `seed + e`.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip in it)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """Make the next pass over `epoch` start at its `start`-th sample (once)."""
        self.epoch = epoch
        self._resume = (epoch, start)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed((self.seed + self.epoch) % 2**63)
        order = torch.randperm(self.num_samples, generator=generator)
        start = 0
        if self._resume is not None:
            epoch, skip = self._resume
            self._resume = None
            start = skip if epoch == self.epoch else 0
        yield from order[start:].tolist()

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """A DataLoader with a `ResumableSampler` that Lightning saves and restores mid-epoch.

    Its state is `{"epoch", "batches"}`: the epoch and the batches handed out in it. It is exact when
    the trainer does not fetch batches ahead, which is Lightning's behaviour for a loader with a length.
    Under a distributed strategy Lightning replaces the sampler with a `DistributedSampler`, and a
    resumed run starts the interrupted epoch's order again (as with a plain DataLoader).

    Args:
        dataset: The training set.
        seed: Seed of the shuffling (see `ResumableSampler`).
        **kwargs: Other `DataLoader` arguments (`batch_size`, `num_workers`, `collate_fn`, ...).
    """

    def __init__(self, dataset, seed: int = 0, sampler: Sampler | None = None, **kwargs) -> None:
        kwargs.pop("shuffle", None)
        # Worker seeds come from this generator, not from the global random state, so creating the
        # iterator does not shift the random numbers the model draws (dropout, augmentation on device).
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        super().__init__(dataset, sampler=sampler or ResumableSampler(len(dataset), seed), **kwargs)
        self._batches = 0

    # A generator rather than DataLoader's `_BaseDataLoaderIter`: callers only iterate over it.
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # Runs at the first `next()`, after Lightning's `set_epoch`: a resumed epoch counts from its start.
        self._batches = 0
        if isinstance(self.sampler, ResumableSampler):
            resume = self.sampler._resume
            if resume and resume[0] == self.sampler.epoch:
                assert self.batch_size is not None  # `load_state_dict` resumes only with a batch size
                self._batches = resume[1] // self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where training is in the data: the epoch and the batches handed out in it."""
        epoch = self.sampler.epoch if isinstance(self.sampler, ResumableSampler) else 0
        return {"epoch": epoch, "batches": self._batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Start the next pass at the batch after the last one handed out before the checkpoint."""
        if isinstance(self.sampler, ResumableSampler) and self.batch_size:
            self.sampler.resume_at(state["epoch"], state["batches"] * self.batch_size)


def resumable(loader: DataLoader, seed: int) -> ResumableDataLoader:
    """A `ResumableDataLoader` over the same data, with the same settings as a shuffling `loader`."""
    settings = {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        settings["prefetch_factor"] = loader.prefetch_factor
    return ResumableDataLoader(loader.dataset, seed=seed, **settings)
