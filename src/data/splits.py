"""Seeded validation splits: random, or stratified by class (each class in proportion)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from src.errors import UserInputError


def stratified_split(targets: Sequence[int], n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices with `n_val` validation samples taken from each class in proportion to its size.

    Each class gets `n_val * class_size / n` samples, rounded down, and the samples left over go to the
    classes with the largest remainders (ties: lower class id), so the split's class balance matches the
    data's as closely as whole numbers allow. Which samples of a class are taken is seeded.

    >>> stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1], n_val=3, seed=0)[1]  # 1 of 4, 2 of 8
    [0, 4, 6]
    """
    by_class: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        by_class.setdefault(int(target), []).append(index)
    n = len(targets)
    exact = {c: n_val * len(ix) / n for c, ix in by_class.items()}
    quota = {c: math.floor(q) for c, q in exact.items()}
    left = n_val - sum(quota.values())
    for c in sorted(exact, key=lambda c: (quota[c] - exact[c], c))[:left]:
        quota[c] += 1
    generator = torch.Generator().manual_seed(seed)
    val: list[int] = []
    for c in sorted(by_class):
        order = torch.randperm(len(by_class[c]), generator=generator).tolist()
        val += [by_class[c][i] for i in order[: quota[c]]]
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], sorted(val)


def num_samples(key: str, size: int | float, n: int) -> int:
    """The samples a size option means: a fraction of `n` when in (0, 1), else a whole number of samples.

    Decided by value, not type: a config's `100` may reach Python as `100.0` (jsonargparse tries the
    members of `int | float | None` in the order `typing` caches them).

    >>> num_samples("val_size", 0.25, 320), num_samples("val_size", 80.0, 320)
    (80, 80)
    """
    if 0 < size < 1:
        return round(n * size)
    if size != int(size):
        raise UserInputError(f"data.{key}: needs a fraction in (0, 1) or a whole number, got {size}")
    return int(size)
