"""Seeded validation splits: random, stratified by class (each class in proportion), or k-fold."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset, Subset

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


def fold_split(
    n: int, num_folds: int, fold: int, seed: int, targets: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """(train, val) indices of k-fold cross-validation: the samples are dealt into `num_folds` folds and
    fold `fold` is the validation set. Every sample is in exactly one fold, so the folds' validation sets
    cover the data once. With `targets`, each class's samples (in a seeded order) are dealt in turn,
    continuing where the previous class stopped, so each fold holds every class in proportion.

    >>> [fold_split(6, 3, k, seed=0, targets=[0, 0, 0, 1, 1, 1])[1] for k in range(3)]
    [[2, 5], [0, 4], [1, 3]]
    """
    generator = torch.Generator().manual_seed(seed)
    if targets is None:
        order = torch.randperm(n, generator=generator).tolist()
    else:
        by_class: dict[int, list[int]] = {}
        for index, target in enumerate(targets):
            by_class.setdefault(int(target), []).append(index)
        order = []
        for c in sorted(by_class):
            order += [by_class[c][i] for i in torch.randperm(len(by_class[c]), generator=generator).tolist()]
    val = sorted(order[fold::num_folds])
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val


def split_indices(
    n: int,
    val_size: int | float,
    seed: int,
    targets: Sequence[int] | None = None,
    num_folds: int | None = None,
    fold: int = 0,
) -> tuple[list[int], list[int]]:
    """Seeded (train, val) indices of a training set of `n` samples: fold `fold` of `num_folds` when
    given (`fold_split`), else `val_size` samples; stratified by class when `targets` are given.

    Raises:
        UserInputError: A `val_size`, `num_folds` or `fold` that does not fit `n` (naming the key).
    """
    if num_folds is not None:
        if not 2 <= num_folds <= n:
            raise UserInputError(
                f"data.num_folds: needs 2 <= num_folds <= {n} (training samples), got {num_folds}"
            )
        if not 0 <= fold < num_folds:
            raise UserInputError(f"data.fold: needs 0 <= fold < num_folds ({num_folds}), got {fold}")
        return fold_split(n, num_folds, fold, seed, targets)
    n_val = num_samples("val_size", val_size, n)
    if not 0 < n_val < n:
        raise UserInputError(f"data.val_size: needs 0 < val_size < {n} (training samples), got {n_val}")
    if targets is not None:
        return stratified_split(targets, n_val, seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return perm[n_val:], perm[:n_val]


def subset_indices(indices: list[int], train_subset: int | float | None, seed: int) -> list[int]:
    """A seeded random `train_subset` of the training `indices` (all of them when it is None or 1)."""
    if train_subset is None or train_subset == 1:
        return indices
    n = len(indices)
    k = num_samples("train_subset", train_subset, n)
    k = max(1, k) if 0 < train_subset < 1 else k
    if not 0 < k <= n:
        raise UserInputError(f"data.train_subset: needs 0 < train_subset <= {n} (training samples), got {k}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(indices[i] for i in perm[:k])


def dataset_targets(dataset: Dataset) -> list[int] | None:
    """The label of each sample of `dataset` (through `Subset`s), from its `targets` or `labels`; None when
    it has neither."""
    if isinstance(dataset, Subset):
        parent = dataset_targets(dataset.dataset)
        return None if parent is None else [parent[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = getattr(dataset, "labels", None)
    if targets is None:
        return None
    return (
        torch.as_tensor(targets).tolist() if isinstance(targets, torch.Tensor) else [int(t) for t in targets]
    )
