"""Datasets of image files of any size and mode: loading, channels, size and normalisation in one place."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import v2

from src.data.base import VisionDataModule
from src.errors import UserInputError

#: PIL mode of each supported channel count.
MODES = {1: "L", 3: "RGB"}


def load_image(path: str | Path, channels: int = 3, image_size: tuple[int, int] | None = None) -> Image.Image:
    """Open an image file as a PIL image with `channels` channels, resized to `image_size` (height, width).

    Reads any file PIL can open (PNG, JPEG, BMP, WebP, TIFF, GIF, ...; the first frame of a multi-frame
    file) in any mode, and returns an 8-bit `L` (`channels=1`) or `RGB` (`channels=3`) image:
    - the EXIF orientation of photos is applied, so the image is upright as viewers show it;
    - 16-bit (`I;16*`) and 32-bit integer (`I`, read as 16-bit values) images are scaled from 0..65535 to
      0..255 (PIL's own conversion would clip everything above 255 to white); float (`F`) images are taken
      as 0..1 when no value exceeds 1, else as 0..255;
    - transparency (an alpha channel, or a transparent palette colour) is composited onto a white
      background, as image viewers show it;
    - colour images become grayscale (ITU-R 601 luma) and grayscale images RGB as needed (palette, CMYK,
      1-bit, ... are converted by PIL).

    The resize ignores the aspect ratio (bilinear). `image_size=None` keeps the file's size. Images of
    more than twice `PIL.Image.MAX_IMAGE_PIXELS` pixels (89.5 million by default, so above about 179
    million) are refused as possible decompression bombs; between once and twice PIL warns.

    Raises:
        UserInputError: The file is missing, empty, truncated or corrupt, not an image, unreadable or too
            large (one line naming the file).
    """
    try:
        with Image.open(path) as image:
            image = _to_mode(ImageOps.exif_transpose(image), MODES[channels])
    except FileNotFoundError as err:
        raise UserInputError(f"{path}: image file not found") from err
    except IsADirectoryError as err:
        raise UserInputError(f"{path}: is a folder, not an image file") from err
    except PermissionError as err:
        raise UserInputError(f"{path}: cannot read the image: permission denied") from err
    except Image.DecompressionBombError as err:
        raise UserInputError(
            f"{path}: image too large ({err}); raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from err
    except UnidentifiedImageError as err:
        empty = Path(path).stat().st_size == 0
        reason = "the file is empty (0 bytes)" if empty else "not an image format PIL can read"
        raise UserInputError(f"{path}: cannot read the image: {reason}") from err
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data
        raise UserInputError(f"{path}: cannot read the image: the file is damaged ({err})") from err
    height, width = image_size or (image.height, image.width)
    if (image.height, image.width) != (height, width):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return image


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` (any PIL mode) as an 8-bit image of `mode` (`L` or `RGB`); see `load_image`."""
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            values = values * 255 if values.size and values.max() <= 1 else values
        else:
            values = values / 257  # 65535 -> 255
        image = Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode != mode:
        image = image.convert(mode)
    image.load()
    return image


class ImageFilesDataModule(VisionDataModule):
    """Base of the datamodules that read folders of image files (PNG, JPEG, ...) of any size.

    Every image is loaded with `channels` channels and resized to `image_size` before any transform, so
    the model always receives (channels, *image_size) tensors, whatever the files are. The default training
    augmentation is a random horizontal flip; set `augment: false`, or give a `train_transform`, when
    flipped images do not belong to the same class (digits, text).

    Args:
        channels: 1 (grayscale) or 3 (RGB): what the images are converted to.
        image_size: (height, width) the images are resized to.
        mean: Per-channel mean to normalise with (one value per channel); default 0.5 each. Compute the
            dataset's own with `compute_mean_std()`.
        std: Per-channel standard deviation to normalise with; default 0.5 each.
        val_size: Validation split taken from the training images when no separate validation set is
            given: a number of samples, or a fraction in (0, 1).
        **kwargs: See `VisionDataModule` (batch_size, num_workers, augment, train_transform, seed, ...).
    """

    def __init__(
        self,
        channels: int = 3,
        image_size: tuple[int, int] = (32, 32),
        mean: list[float] | None = None,
        std: list[float] | None = None,
        val_size: int | float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(data_dir="", val_size=val_size, **kwargs)
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

    def augmentations(self) -> list[v2.Transform]:
        return [v2.RandomHorizontalFlip()]


def name_list(names: list[str], limit: int = 8) -> str:
    """`names` for an error message, the first `limit` of them when there are more.

    >>> name_list(["a", "b", "c"], limit=2)
    "'a', 'b', ... (3 in all)"
    """
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


#: Problems shown in one error message; the others are counted.
SHOWN_PROBLEMS = 10


def problems_error(where: str, problems: list[str], limit: int = SHOWN_PROBLEMS) -> UserInputError:
    """One error for all the `problems` found in the input files, so one run shows every one of them.

    One problem is the message itself (one line). Several give a one-line summary (`where`, a file or a
    config key, and how many), then the first `limit` problems, one a line, then how many more there are.

    Args:
        where: What the problems are in, for the summary line (e.g. the CSV file).
        problems: One line each, saying where (`file:line: ...`, `data.root: ...`) and what.
        limit: How many problems to show.

    >>> print(problems_error("train.csv", ["train.csv:2: a", "train.csv:5: b", "train.csv:9: c"], limit=2))
    train.csv: 3 problems (fix them and run again):
    train.csv:2: a
    train.csv:5: b
    ... and 1 more
    """
    if len(problems) == 1:
        return UserInputError(problems[0])
    lines = [f"{where}: {len(problems)} problems (fix them and run again):", *problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return UserInputError("\n".join(lines))
