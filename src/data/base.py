"""The base datamodule every image dataset in this template derives from."""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from functools import partial
from typing import Literal, cast

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2

from src.data.augment import Policy, batch_mixer, recipe_augmentations
from src.data.datasets import ImageFilesDataset, TensorImageDataset, collate_batch, root_dataset
from src.data.loaders import evaluation_loader, run_seed, training_loader
from src.data.paths import expand_image_paths
from src.data.samplers import ClassBalancedSampler
from src.data.splits import dataset_targets, split_indices, subset_indices
from src.data.statistics import channel_mean_std
from src.errors import UserInputError


class VisionDataModule(LightningDataModule):
    """Common parts of an image-classification datamodule: train/val split, loaders, transforms.

    A dataset is added by subclassing this class, setting the class attributes below and implementing
    `make_dataset` (and `prepare_data` when the files can be downloaded). The CLI links `num_classes`,
    `in_channels`, `image_size` and `class_names` into the model, so a config never states them twice.

    Transforms: each dataset has defaults (`default_train_transforms`, `default_eval_transforms`); a config
    replaces them with `train_transform` / `eval_transform`, each a whole pipeline from the dataset's PIL
    image to the normalised float tensor (e.g. a `torchvision.transforms.v2.Compose` given by `class_path`).
    Validation, test and predict use the evaluation transforms, from a dataset instance of their own.

    `train_subset` is a seeded `Subset` of the training split (not a sampler, which Lightning would
    replace under DDP), so every process draws from the same samples.

    Args:
        data_dir: Folder that holds (or will hold, after download) the dataset files.
        val_size: Validation split taken from the training set: a number of samples, or a fraction in (0, 1).
        batch_size: Samples per batch (per process when training on several devices).
        num_workers: DataLoader worker processes; 0 loads in the main process.
        pin_memory: Page-locked host memory for faster copies to the GPU.
        persistent_workers: Keep worker processes alive between epochs (only when `num_workers > 0`).
        augment: Apply the dataset's default training augmentation (ignored when `train_transform` is set).
        train_transform: Replaces the default training transforms (PIL image -> normalised float tensor).
        eval_transform: Replaces the default evaluation transforms of validation, test and predict.
        train_subset: Train on a seeded random part of the training split: a number of samples, or a
            fraction in (0, 1). None (or 1) trains on all of it. The validation split does not change.
        seed: Seed of the train/val split and of `train_subset`; the same seed gives the same samples.
        drop_last: Drop the last, incomplete training batch, so every training batch has the same shape
            (what `torch.compile` and CUDA graphs want). Validation and test never drop samples.
        augment_policy: An automatic augmentation policy after the dataset's own augmentations:
            `trivialaugment`, `randaugment`, `autoaugment` (torchvision's, per image) or `none`.
        random_erasing: Probability of erasing a random rectangle of each training image (0: off).
        mixup_alpha: MixUp of training batches (alpha of its Beta distribution, e.g. 0.2; 0: off); with
            `cutmix_alpha` too, each batch gets one of the two at random. Targets become soft.
        cutmix_alpha: CutMix of training batches (e.g. 1.0; 0: off). Both are applied to whole batches on
            the device (`on_after_batch_transfer`), never to validation or test batches.
        predict_paths: What `predict` runs on: image files, folders (their image files, not sub-folders),
            glob patterns, or `.csv` files listing image paths in their first column (relative to the CSV's
            folder). Each image is loaded with this datamodule's `in_channels` and `image_size` and gets the
            evaluation transforms. None (the default) predicts the test split.
        num_folds: k-fold cross-validation: split the training data into this many folds (by class where
            the dataset stratifies) and validate on fold `fold` instead of `val_size` samples. None: off.
        fold: The validation fold, 0 to `num_folds` - 1 (`python -m src.cross_validate` runs them all).
        sampler: `random` (shuffle) or `balanced`: draw training images with probability inversely
            proportional to their class's size, so every class is drawn equally often (with replacement,
            as many draws per epoch as training images; under DDP each process draws its own shard).
    """

    #: Class names, index = label id. Subclasses set it (as a class attribute or in `__init__`).
    class_names: list[str]
    #: Channels of the tensors the model receives.
    in_channels: int
    #: (height, width) of the tensors the model receives.
    image_size: tuple[int, int]
    #: Per-channel normalisation statistics of the training set.
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(
        self,
        data_dir: str = "data",
        val_size: int | float = 5000,
        batch_size: int = 128,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        augment: bool = True,
        train_transform: Callable | None = None,
        eval_transform: Callable | None = None,
        train_subset: int | float | None = None,
        seed: int = 42,
        predict_paths: list[str] | None = None,
        drop_last: bool = False,
        augment_policy: Policy = "none",
        random_erasing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        num_folds: int | None = None,
        fold: int = 0,
        sampler: Literal["random", "balanced"] = "random",
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.val_size = val_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.augment = augment
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.train_subset = train_subset
        self.seed = seed
        self.predict_paths = predict_paths
        self.drop_last = drop_last
        self.augment_policy = augment_policy
        self.random_erasing = random_erasing
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.num_folds, self.fold, self.sampler = num_folds, fold, sampler
        self._mixer: Callable | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.predict_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of `class_names`)."""
        return len(self.class_names)

    # --- what a subclass provides -------------------------------------------------------------------

    def make_dataset(self, train: bool, transform: Callable) -> Dataset:
        """Return the training (`train=True`) or test split, reading files that are already there."""
        raise NotImplementedError

    def make_val_dataset(self, transform: Callable) -> Dataset | None:
        """A validation set of its own, or None (the default) to split one off the training set."""
        return None

    @property
    def has_test_split(self) -> bool:
        """Whether there is a test split (`fit` then ends with a test of the best checkpoint): True here;
        a subclass whose test split is optional overrides it."""
        return True

    def augmentations(self) -> list[v2.Transform]:
        """The dataset's own training augmentations (crop, flip), on uint8 images before normalisation."""
        return []

    def training_augmentations(self) -> list[v2.Transform]:
        """`augmentations()`, then the `augment_policy` and `random_erasing` of the config."""
        return [*self.augmentations(), *recipe_augmentations(self.augment_policy, self.random_erasing)]

    # --- transforms ---------------------------------------------------------------------------------

    def default_eval_transforms(self) -> v2.Transform:
        """PIL image -> float tensor normalised with `mean`/`std`, without randomness."""
        return v2.Compose(
            [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        )

    def default_train_transforms(self) -> Callable:
        """The augmentations (when `augment` is on) followed by the evaluation transforms."""
        if not self.augment:
            return self.eval_transforms()
        return v2.Compose([v2.ToImage(), *self.training_augmentations(), self.eval_transforms()])

    def eval_transforms(self) -> Callable:
        """What validation, test and predict use: `eval_transform` if given, else the defaults."""
        return self.eval_transform if self.eval_transform is not None else self.default_eval_transforms()

    def train_transforms(self) -> Callable:
        """What training uses: `train_transform` if given, else the defaults."""
        return self.train_transform if self.train_transform is not None else self.default_train_transforms()

    # --- splits -------------------------------------------------------------------------------------

    def split_targets(self, dataset: Dataset) -> Sequence[int] | None:
        """The labels to stratify the validation split by (None: a random split, the default)."""
        return None

    def _train_val_indices(self, train_full: Dataset, own_val: bool) -> tuple[list[int], list[int] | None]:
        """Seeded indices of the training subset and of the validation split (None when the validation set
        is its own): fold `fold` of `num_folds`, else `val_size` samples, stratified by `split_targets`."""
        n = len(cast(Sized, train_full))  # map-style datasets, all with a length
        if own_val:
            if self.num_folds is not None:
                raise UserInputError(
                    "data.num_folds: the folds are split off the training data; "
                    "leave out the separate validation set"
                )
            return subset_indices(list(range(n)), self.train_subset, self.seed), None
        targets = self.split_targets(train_full)
        train_idx, val_idx = split_indices(n, self.val_size, self.seed, targets, self.num_folds, self.fold)
        return subset_indices(train_idx, self.train_subset, self.seed), val_idx

    def _fit_datasets(self, train_transform: Callable, eval_transform: Callable) -> tuple[Subset, Dataset]:
        """The training subset and the validation set, with the given transforms."""
        train_full = self.make_dataset(train=True, transform=train_transform)
        val_set = self.make_val_dataset(transform=eval_transform)
        train_idx, val_idx = self._train_val_indices(train_full, own_val=val_set is not None)
        if val_idx is not None:
            val_set = Subset(self.make_dataset(train=True, transform=eval_transform), val_idx)
        return Subset(train_full, train_idx), cast(Dataset, val_set)

    def class_counts(self) -> torch.Tensor | None:
        """Images per class in the training split (after `setup("fit")`); None when its labels are unknown."""
        targets = dataset_targets(self.train_set) if self.train_set is not None else None
        if targets is None:
            return None
        return torch.bincount(torch.tensor(targets, dtype=torch.int64), minlength=self.num_classes)

    def setup(self, stage: str) -> None:
        """Build the datasets the stage needs (`fit`, `validate`, `test` or `predict`)."""
        if stage in ("fit", "validate") and self.train_set is None:
            self.train_set, self.val_set = self._fit_datasets(self.train_transforms(), self.eval_transforms())
        if stage == "predict" and self.predict_paths is not None:
            if self.predict_set is None:
                self.predict_set = self.make_predict_dataset(self.predict_paths)
            return
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self.make_dataset(train=False, transform=self.eval_transforms())

    def make_predict_dataset(self, inputs: list[str]) -> Dataset:
        """The images of `predict_paths`, loaded as the model expects them, with the evaluation transforms."""
        paths = expand_image_paths(inputs, key="data.predict_paths", csv_lists=True)
        image_size = cast(tuple[int, int], tuple(self.image_size))  # a config may give a list
        return ImageFilesDataset(paths, None, self.eval_transforms(), self.in_channels, image_size)

    def compute_mean_std(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, to put in a config as `mean`/`std`.

        Reads the training split as `setup` builds it (without augmentation or normalisation), so the
        validation images do not count. Downloadable datasets need their files first (`prepare_data`).
        """
        to_float = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
        train_set, _ = self._fit_datasets(to_float, to_float)
        return channel_mean_std(train_set, batch_size=self.batch_size, num_workers=self.num_workers)

    # --- loaders ------------------------------------------------------------------------------------

    def _loader(
        self, dataset: Dataset | None, shuffle: bool, drop_last: bool = False, sampler=None
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() for this stage before asking for its dataloader")
        collate_fn, workers = None, self.num_workers
        if isinstance(root_dataset(dataset), TensorImageDataset):
            # Batches itself (one indexing per batch, in the main process): workers would only add copies.
            collate_fn, workers = collate_batch, 0
        make = partial(training_loader, seed=self.seed, sampler=sampler) if shuffle else evaluation_loader
        return make(
            dataset,
            batch_size=self.batch_size,
            drop_last=drop_last,
            collate_fn=collate_fn,
            num_workers=workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """MixUp/CutMix of training batches (images, class ids) on the device, when the config asks."""
        mixes = bool(self.mixup_alpha or self.cutmix_alpha)
        mixing = mixes and self.trainer is not None and self.trainer.training
        if not mixing or not isinstance(batch, (list, tuple)) or len(batch) != 2:
            return batch  # e.g. the model summary's example input
        if self._mixer is None:
            self._mixer = batch_mixer(self.mixup_alpha, self.cutmix_alpha, self.num_classes)
        assert self._mixer is not None  # an alpha is set
        return list(self._mixer(*batch))

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced: `sampler`) training batches, in an order fixed by the seed and the
        epoch, so a run resumed mid-epoch continues with the very next batch (see `src.data.loaders`)."""
        sampler = None
        if self.sampler == "balanced" and self.train_set is not None:
            world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
            sampler = ClassBalancedSampler(
                dataset_targets(self.train_set) or [], world, rank, run_seed(self.seed)
            )
        return self._loader(self.train_set, shuffle=True, drop_last=self.drop_last, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The `predict_paths` images when given, else the test split (in order, never shuffled)."""
        dataset = self.predict_set if self.predict_paths is not None else self.test_set
        return self._loader(dataset, shuffle=False)
