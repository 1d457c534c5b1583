"""The base of the datamodules that read image files of any size and mode (CSV lists, class folders)."""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from functools import cached_property
from typing import Literal, cast

import torch
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import Dataset
from torchvision.transforms import v2

from src.data.augment import check_crop_padding, crop_and_flip
from src.data.cache import cache_fits, decode_split
from src.data.datasets import ImageFilesDataset
from src.data.decode import Decoder, image_loader
from src.data.images import MODES
from src.data.tensor_splits import TensorSplitsDataModule
from src.errors import UserInputError

CacheMode = Literal["auto", "memory", "none"]


class ImageFilesDataModule(TensorSplitsDataModule):
    """Base of the datamodules that read folders of image files (PNG, JPEG, ...) of any size.

    Every image is loaded with `channels` channels and resized to `image_size` before any transform, so
    the model always receives (channels, *image_size) tensors, whatever the files are. The default training
    augmentation is a random crop of `image_size` from the image padded by `crop_padding` pixels (when it
    is above 0), then a random horizontal flip; set `augment: false`, or give a `train_transform`, when
    flipped images do not belong to the same class (digits, text).

    `cache`: with the default transforms, every image can be decoded and resized once, before training (in
    threads, with a progress bar), and kept as one uint8 tensor per split; batches are then augmented and
    normalised on the device, as FashionMNIST's are (see `TensorSplitsDataModule`), instead of decoding
    each file in every epoch. `auto` caches when the decoded splits fit `cache_limit_gb` and says which it
    chose. A `train_transform`/`eval_transform` (which take PIL images) always uses the per-sample path.

    Args:
        channels: 1 (grayscale) or 3 (RGB): what the images are converted to.
        image_size: (height, width) the images are resized to.
        mean: Per-channel mean to normalise with (one value per channel); default 0.5 each. Compute the
            dataset's own with `compute_mean_std()`.
        std: Per-channel standard deviation to normalise with; default 0.5 each.
        val_size: Validation split taken from the training images when no separate validation set is
            given: a number of samples, or a fraction in (0, 1).
        crop_padding: Pixels of zero padding around each training image before a random crop back to
            `image_size` (0: no crop).
        stratify: Take the validation split from each class in proportion to its size (seeded), so a
            rare class is not left out of it by chance; False: a plain random split.
        decoder: What decodes the image files. `torchvision` (the default): uint8 tensors from
            `src.data.decode.read_image`, which decodes RGB JPEG photos with torchvision and resizes them
            with torch (about 1.5 to 2 times PIL's speed; resized pixels within a level of PIL's) and
            leaves the rest to `load_image`; used with the default transforms only, as a
            `train_transform`/`eval_transform` may expect PIL images. `pil`: PIL images (`load_image`).
        cache: `memory`: decode every image once and keep the splits in memory; `none`: decode the
            files in every epoch; `auto`: `memory` when the decoded images fit `cache_limit_gb`.
        cache_limit_gb: The memory budget of `cache: auto`, in GB, for the decoded images of every process
            on this machine (each DDP process keeps its own copy); None: a quarter of the machine's memory.
        **kwargs: See `VisionDataModule` (batch_size, num_workers, augment, train_transform, seed, ...).
    """

    def __init__(
        self,
        channels: int = 3,
        image_size: tuple[int, int] = (32, 32),
        mean: list[float] | None = None,
        std: list[float] | None = None,
        val_size: int | float = 0.1,
        crop_padding: int = 0,
        stratify: bool = True,
        decoder: Decoder = "torchvision",
        cache: CacheMode = "auto",
        cache_limit_gb: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir="", val_size=val_size, **kwargs)
        self.crop_padding, self.stratify = check_crop_padding(crop_padding), stratify
        if cache not in ("auto", "memory", "none"):
            raise UserInputError(f"data.cache: must be auto, memory or none, got {cache!r}")
        if cache_limit_gb is not None and cache_limit_gb < 0:
            raise UserInputError(f"data.cache_limit_gb: must be >= 0 (GB), got {cache_limit_gb}")
        self.cache, self.cache_limit_gb = cache, cache_limit_gb
        self._cached: bool | None = None  # decided once, at the first `uses_tensors`
        if channels not in MODES:
            raise UserInputError(f"data.channels: must be 1 (grayscale) or 3 (RGB), got {channels}")
        if len(image_size) != 2 or min(image_size) < 1:
            raise UserInputError(f"data.image_size: needs (height, width) > 0, got {image_size}")
        self.in_channels = channels
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.mean = self._per_channel("mean", mean)
        self.std = self._per_channel("std", std)
        if min(self.std) <= 0:
            raise UserInputError(f"data.std: values must be > 0, got {list(self.std)}")
        if decoder not in ("torchvision", "pil"):
            raise UserInputError(f"data.decoder: must be torchvision or pil, got {decoder!r}")
        self.decoder = decoder

    @property
    def file_decoder(self) -> Decoder:
        """What decodes the files: `decoder`, but `pil` when a `train_transform`/`eval_transform` is set."""
        return self.decoder if self.user_transform is None else "pil"

    @property
    def loader(self) -> Callable:
        """Opens one file as the model expects it (`file_decoder`; picklable, for DataLoader workers)."""
        return image_loader(self.file_decoder, self.in_channels, self.image_size)

    def make_predict_dataset(self, inputs: list[str]) -> Dataset:
        """The images of `predict_paths` (see `VisionDataModule`), decoded as the other splits."""
        dataset = cast(ImageFilesDataset, super().make_predict_dataset(inputs))
        dataset.loader = self.loader
        return dataset

    def _per_channel(self, key: str, values: list[float] | None) -> tuple[float, ...]:
        if values is None:
            return (0.5,) * self.in_channels
        if len(values) != self.in_channels:
            raise UserInputError(
                f"data.{key}: needs one value per channel ({self.in_channels}), got {len(values)}"
            )
        return tuple(float(v) for v in values)

    def split_targets(self, dataset: Dataset) -> Sequence[int] | None:
        """The training images' labels when `stratify` is on (ImageFolder and CSV datasets have `targets`)."""
        targets = getattr(dataset, "targets", None)
        return [int(t) for t in targets] if self.stratify and targets is not None else None

    def augmentations(self) -> list[v2.Transform]:
        return crop_and_flip(self.image_size, self.crop_padding)

    # --- the cache ----------------------------------------------------------------------------------

    @property
    def uses_tensors(self) -> bool:
        """Whether the splits are decoded once and kept in memory (`cache`); decided and reported once."""
        if self._cached is None:
            self._cached, reason = self._cache_decision()
            rank_zero_info(f"data.cache={self.cache}: {reason}")
        return self._cached

    def _cache_decision(self) -> tuple[bool, str]:
        """Whether to cache, and why (the message `uses_tensors` prints)."""
        per_sample = "decoding the image files in every epoch"
        if self.user_transform is not None:
            return False, f"{self.user_transform} is set (it takes PIL images): {per_sample}"
        if self.cache == "none":
            return False, per_sample
        shape = (self.in_channels, *self.image_size)
        processes = self.trainer.num_devices if self.trainer is not None else 1
        fits, figures = cache_fits(self._count_images(), shape, processes, self.cache_limit_gb)
        if self.cache == "memory" or fits:
            return True, f"decoding every image once, into memory: {figures}"
        return False, f"{per_sample}: caching would need {figures}"

    def _count_images(self) -> int:
        """Images in the splits a process caches (training, its own validation set, test)."""
        return sum(len(cast(Sized, d)) for d in self._files.values() if d is not None)

    @cached_property
    def _files(self) -> dict[str, Dataset | None]:
        """Each split's dataset without transforms (None: no such split), listed once for the cache."""
        files: dict[str, Dataset | None] = {
            "training": self.make_dataset(train=True, transform=v2.Identity())
        }
        files["validation"] = self.make_val_dataset(transform=v2.Identity())
        has_test = self.has_test_split
        files["test"] = self.make_dataset(train=False, transform=v2.Identity()) if has_test else None
        return files

    def _decode(self, dataset: Dataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.in_channels, *self.image_size)
        desc = f"decoding {name} images"
        return decode_split(dataset, shape, desc=desc, progress=rank_zero_only.rank == 0)  # type: ignore[attr-defined]

    def load_tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The training or test images, decoded once (see `cache`)."""
        name = "training" if train else "test"
        # No test split: `make_dataset` raises the error that says which option to set.
        dataset = self._files[name] or self.make_dataset(train, transform=v2.Identity())
        return self._decode(dataset, name)

    def load_val_tensors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The validation set's own images, decoded once; None when it is split off the training images."""
        dataset = self._files["validation"]
        return None if dataset is None else self._decode(dataset, "validation")
