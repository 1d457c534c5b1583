"""Decoding a whole split of image files once, into one uint8 tensor (the `cache` of image-file datamodules).

No Lightning here: the datamodule decides whether to cache (`cache_fits`) and hands over its per-sample
dataset; `decode_split` reads every image once, in threads (the decoders release the GIL), with a progress
bar, into a tensor allocated up front.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

#: Images decoded per thread task (few tasks, so the pool's overhead stays small for millions of images).
CHUNK = 64


def physical_memory() -> int:
    """Bytes of memory of this machine (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def cache_fits(
    num_images: int, shape: tuple[int, int, int], processes: int, limit_gb: float | None
) -> tuple[bool, str]:
    """Whether caching `num_images` of `shape` (C, H, W) in each of `processes` fits the memory budget.

    Args:
        num_images: Images of every split one process caches.
        shape: (channels, height, width) of each decoded image.
        processes: Processes on this machine that each keep their own copy (devices under DDP).
        limit_gb: The budget in GB (10**9 bytes); None: a quarter of this machine's memory.

    Returns:
        The decision, and the figures behind it as text (for the message that reports it).

    >>> cache_fits(1000, (3, 32, 32), 1, limit_gb=1.0)
    (True, '3.1 MB for 1,000 images, within the limit of 1.0 GB (data.cache_limit_gb)')
    """
    need = num_images * shape[0] * shape[1] * shape[2] * max(1, processes)
    limit = limit_gb * 1e9 if limit_gb is not None else physical_memory() / 4
    who = f" x {processes} processes" if processes > 1 else ""
    source = "data.cache_limit_gb" if limit_gb is not None else "a quarter of this machine's memory"
    fits = need <= limit
    where = "within" if fits else "over"
    return (
        fits,
        f"{_size(need)} for {num_images:,} images{who}, {where} the limit of {_size(limit)} ({source})",
    )


def _size(num_bytes: float) -> str:
    """Bytes as kB, MB or GB, e.g. `3.1 MB`."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes / 1e3:.1f} kB"


def decode_split(
    dataset: Dataset,
    shape: tuple[int, int, int],
    desc: str = "decoding",
    threads: int | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every `(image, label)` of `dataset` as uint8 images (N, C, H, W) and int64 labels.

    Args:
        dataset: Items `(image, label)`, the image a PIL image or a uint8 tensor of `shape` (a datamodule's
            per-sample dataset without transforms).
        shape: (channels, height, width) of every image.
        desc: The progress bar's label.
        threads: Decoding threads; default: the CPUs this process may use.
        progress: Show a progress bar (on stderr).

    Raises:
        UserInputError: An image cannot be read (raised by the loader, naming the file); the other
            threads stop at once.
    """
    n = len(cast(Sized, dataset))
    images = torch.empty((n, *shape), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)

    def decode(start: int) -> int:
        stop = min(start + CHUNK, n)
        for i in range(start, stop):
            image, label = dataset[i]
            image = image if isinstance(image, torch.Tensor) else F.pil_to_tensor(image)
            if tuple(image.shape) != shape:
                raise ValueError(f"item {i} has shape {tuple(image.shape)}, expected {shape}")
            images[i], labels[i] = image, int(label)
        return stop - start

    threads = threads or len(os.sched_getaffinity(0))
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        with tqdm(total=n, desc=desc, unit=" images", disable=not progress, leave=False) as bar:
            for done in pool.map(decode, range(0, n, CHUNK)):
                bar.update(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return images, labels
