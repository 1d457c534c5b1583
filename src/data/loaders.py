"""The DataLoaders: for training, a torchdata `StatefulDataLoader` that resumes mid-epoch with the very next
batch; for evaluation, plain ones that leave the global random state alone.

Lightning restores a run's progress from a checkpoint (epoch, batches done) but not where the data
iterator was; it saves the `state_dict` of a training loader that has one in the checkpoint and hands
it back to `load_state_dict` on resume. `StatefulDataLoader` keeps that position (the batches handed
out, the state of its worker processes); `TrainingDataLoader` adds what exactness needs on top:

- the order is `SeededRandomSampler`'s, fixed by the seed and the epoch, never the global random
  state (under DDP Lightning wraps it in a `DistributedSamplerWrapper`, which keeps it);
- on resume Lightning creates the iterator before it calls the sampler's `set_epoch`, and torchdata
  draws the order as soon as the iterator exists: the saved position is applied at the first batch,
  once the epoch is known, and it is dropped when Lightning has moved on to a new epoch (a checkpoint
  from the end of an epoch);
- the random augmentation of worker processes: each worker seeds its random state before each batch
  from its seed and the batches it read, a count torchdata saves (`BatchSeededDataset`); the workers'
  seeds come from the seed and the epoch.

Every rank of a DDP run loads rank 0's state (Lightning saves the loader of rank 0 only), which is
exact because every rank's loader has the same seed and the same position.
"""

from __future__ import annotations

import itertools
import os
import random
import warnings
from collections.abc import Callable, Iterator, Sized
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader


class SeededRandomSampler(Sampler[int]):
    """A random order of `range(num_samples)` that depends only on `seed` and the epoch.

    >>> sampler = SeededRandomSampler(6, seed=0)
    >>> order = list(sampler)
    >>> sampler.set_epoch(1)
    >>> sorted(sampler) == list(range(6)) and list(sampler) != order
    True

    Args:
        num_samples: Size of the dataset.
        seed: Seed of the order; epoch `e` uses the permutation of `seed + e`.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed((self.seed + self.epoch) % 2**63)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSeededDataset(Dataset):
    """`dataset`, read a batch at a time (`__getitems__`), with the random state of the worker process
    reading it seeded before each batch from the worker's seed, `rank` and the batches it read so far.

    That count is its `state_dict`, which torchdata saves with every batch and loads into the worker
    again on resume, so the workers' random augmentation goes on as in a run never interrupted. A count
    rather than the random state itself: Lightning saves the loader of rank 0 only and every DDP rank
    loads it, and the count is the same on every rank while (with `seed_everything(workers=True)`, as
    the CLI does) the random states are not.

    Args:
        dataset: A map-style dataset with a length.
        rank: The DDP rank of this process, so that the ranks draw different random numbers
            (`TrainingDataLoader` sets it when it starts its workers).
    """

    def __init__(self, dataset: Dataset, rank: int = 0) -> None:
        self.dataset = dataset
        self.rank = rank
        self.batches = 0

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> Any:
        worker = get_worker_info()
        if worker is not None:
            seed = random.Random(f"{worker.seed} {self.rank} {self.batches}").getrandbits(63)
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            self.batches += 1
        getitems = getattr(self.dataset, "__getitems__", None)
        return getitems(indices) if getitems else [self.dataset[i] for i in indices]

    def state_dict(self) -> dict[str, int]:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batches = state["batches"]


class TrainingDataLoader(StatefulDataLoader):
    """A `StatefulDataLoader` whose saved position waits for the epoch (see the module docstring).

    A run resumed with another `num_workers` goes on with the same batches too, by skipping those done
    (torchdata's state needs the same workers); only the workers' random numbers differ then. The sampler
    (or the batch sampler's sampler) should have `set_epoch` and `epoch`, as `SeededRandomSampler` and
    every `DistributedSampler` have; without them a saved position is always applied as it is.

    Args:
        dataset: The training set.
        *args: `StatefulDataLoader` arguments, as for `DataLoader`.
        seed: Seed of the worker processes: epoch `e` draws their seeds from a generator seeded with
            `seed + e`.
        **kwargs: Other `StatefulDataLoader` arguments; `generator` (reseeded each epoch) is made here.
    """

    def __init__(self, dataset: Dataset, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        # Worker seeds come from this generator, not from the global random state, so creating the
        # iterator does not shift the random numbers the model draws (dropout, augmentation on device).
        kwargs.setdefault("generator", torch.Generator())  # Lightning passes it when it copies the loader
        with warnings.catch_warnings():  # torchdata 0.11 calls `torch.set_vital`, deprecated in torch
            warnings.filterwarnings("ignore", "'set_vital' is deprecated")
            super().__init__(dataset, *args, **kwargs)
        self.seed = seed
        self._batches = 0  # handed out in this epoch
        self._saved: dict[str, Any] | None = None

    def _epoch(self) -> int | None:
        batch_sampler = getattr(self.batch_sampler, "sampler", None)  # where Lightning puts its sampler
        for sampler in (batch_sampler, self.sampler):
            epoch = getattr(sampler, "epoch", None)
            if callable(getattr(sampler, "set_epoch", None)) and isinstance(epoch, int):
                return epoch
        return None

    # A generator rather than torchdata's iterator: callers only iterate over it, and its body runs at
    # the first `next()`, after Lightning's `set_epoch`.
    def __iter__(self) -> Iterator[Any]:
        epoch = self._epoch()
        saved, self._saved = self._saved, None
        self._batches = skip = 0
        same_workers = saved is not None and saved.get("workers") == self.num_workers
        if saved is not None and saved["epoch"] in (epoch, None):  # go on with the next batch
            self._batches = saved["batches"]
            if same_workers:
                super().load_state_dict(saved["iterator"])  # the workers' batch counts too
            else:  # other workers (or the template's v0.1 loader): the same order, so skip the batches
                skip = saved["batches"]
        elif same_workers and self.persistent_workers and self.num_workers > 0:
            # A new epoch in the same workers, whose batch counts go on from the end of the saved one.
            super().load_state_dict({**cast(dict, saved)["iterator"], "_iterator_finished": True})
        cast(torch.Generator, self.generator).manual_seed(self.seed + (epoch or 0))
        if isinstance(self.dataset, BatchSeededDataset):  # known by now, even if the loader was built before
            self.dataset.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        for batch in itertools.islice(super().__iter__(), skip, None):
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Where training is: the sampler's epoch, the batches handed out in it, the number of worker
        processes and torchdata's state (or the state loaded last, until the first batch after it)."""
        if self._saved is not None:
            return self._saved
        state = {"epoch": self._epoch(), "batches": self._batches, "workers": self.num_workers}
        return {**state, "iterator": super().state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the position, to apply at the next epoch's first batch (when the epochs match)."""
        self._saved = state_dict


def run_seed(seed: int) -> int:
    """The seed of the training order: the run's (`seed_everything` sets PL_GLOBAL_SEED in every process,
    DDP's too, so every rank gets the same), else `seed`."""
    return int(os.environ.get("PL_GLOBAL_SEED", seed))


def training_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    **kwargs: Any,
) -> TrainingDataLoader:
    """The shuffled training loader over `dataset`, which Lightning resumes mid-epoch exactly.

    Args:
        dataset: The training set (map-style, with a length).
        batch_size: Samples per batch.
        seed: Seed of the order (`SeededRandomSampler`) and of the worker processes, unless
            `seed_everything` set PL_GLOBAL_SEED (the CLI's `seed_everything: 42`), which is used then.
        sampler: Another order (e.g. a `DistributedSampler` of your own; Lightning keeps those, and wraps
            any other sampler in a `DistributedSamplerWrapper` under DDP). It should have `set_epoch`.
        num_workers: Worker processes; they reseed their random state before each batch (see
            `BatchSeededDataset`), so that a resumed run draws the same random numbers.
        collate_fn: Merges samples into a batch (None: PyTorch's default).
        **kwargs: Other `DataLoader` arguments (`pin_memory`, `drop_last`, `persistent_workers`, ...).
    """
    seed = run_seed(seed)
    if sampler is None:
        sampler = SeededRandomSampler(len(cast(Sized, dataset)), seed)
    if num_workers > 0:
        dataset = BatchSeededDataset(dataset)
    return TrainingDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        seed=seed,
        **kwargs,
    )


def evaluation_loader(dataset: Dataset, **kwargs: Any) -> DataLoader:
    """A plain `DataLoader` over `dataset`, in order, whose iterators never draw from the global random state.

    A DataLoader without a `generator` draws the worker seed of each new iterator from the global random
    state. A resumed run skips Lightning's sanity check, so the validation loader's persistent workers
    would start (and draw) at another point of training than in the run it continues, and every random
    number after it (dropout) would differ.

    Args:
        dataset: The validation, test or predict set.
        **kwargs: Other `DataLoader` arguments (`batch_size`, `num_workers`, `collate_fn`, ...).
    """
    return DataLoader(dataset, generator=torch.Generator(), **kwargs)
