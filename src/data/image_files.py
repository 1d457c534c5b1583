"""The base of the datamodules that read image files of any size and mode (CSV lists, class folders)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from torch.utils.data import Dataset
from torchvision.transforms import v2

from src.data.augment import check_crop_padding, crop_and_flip
from src.data.base import VisionDataModule
from src.data.images import MODES, load_image
from src.errors import UserInputError


class ImageFilesDataModule(VisionDataModule):
    """Base of the datamodules that read folders of image files (PNG, JPEG, ...) of any size.

    Every image is loaded with `channels` channels and resized to `image_size` before any transform, so
    the model always receives (channels, *image_size) tensors, whatever the files are. The default training
    augmentation is a random crop of `image_size` from the image padded by `crop_padding` pixels (when it
    is above 0), then a random horizontal flip; set `augment: false`, or give a `train_transform`, when
    flipped images do not belong to the same class (digits, text).

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
        **kwargs,
    ) -> None:
        super().__init__(data_dir="", val_size=val_size, **kwargs)
        self.crop_padding, self.stratify = check_crop_padding(crop_padding), stratify
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
        #: Opens one file as the model expects it (picklable, for DataLoader workers).
        self.loader = partial(load_image, channels=channels, image_size=self.image_size)

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
