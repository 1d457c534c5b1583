"""Image decoding: any image file as an 8-bit grayscale or RGB PIL image of a given size.

A leaf module (PIL and NumPy only): datasets, prediction and serving all open images through `load_image`,
so an image gets the same pixels whichever way it reaches the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from src.errors import UserInputError

#: PIL mode of each supported channel count.
MODES = {1: "L", 3: "RGB"}


class ImageTooLargeError(UserInputError):
    """An image with more pixels than allowed (a possible decompression bomb)."""


def load_image(
    path: str | Path | IO[bytes],
    channels: int = 3,
    image_size: tuple[int, int] | None = None,
    max_pixels: int | None = None,
    name: str | None = None,
) -> Image.Image:
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

    Args:
        path: The image file, or an open binary file (e.g. `io.BytesIO` of an uploaded image).
        channels: 1 (grayscale) or 3 (RGB).
        image_size: (height, width) to resize to; `None` keeps the file's size.
        max_pixels: Refuse images of more pixels than this (checked from the header, before decoding).
        name: What names the image in error messages (default: `path`).

    Raises:
        UserInputError: The file is missing, empty, truncated or corrupt, not an image or unreadable (one
            line naming the file); `ImageTooLargeError` when it has too many pixels.
    """
    name = str(path) if name is None else name
    try:
        with Image.open(path) as opened:
            if max_pixels is not None and opened.width * opened.height > max_pixels:
                raise ImageTooLargeError(
                    f"{name}: image too large ({opened.width}x{opened.height} = "
                    f"{opened.width * opened.height} pixels; the limit is {max_pixels})"
                )
            image = _to_mode(ImageOps.exif_transpose(opened), MODES[channels])
    except FileNotFoundError as err:
        raise UserInputError(f"{name}: image file not found") from err
    except IsADirectoryError as err:
        raise UserInputError(f"{name}: is a folder, not an image file") from err
    except PermissionError as err:
        raise UserInputError(f"{name}: cannot read the image: permission denied") from err
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(
            f"{name}: image too large ({err}); raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from err
    except UnidentifiedImageError as err:
        reason = "the file is empty (0 bytes)" if _is_empty(path) else "not an image format PIL can read"
        raise UserInputError(f"{name}: cannot read the image: {reason}") from err
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data
        raise UserInputError(f"{name}: cannot read the image: the file is damaged ({err})") from err
    height, width = image_size or (image.height, image.width)
    if (image.height, image.width) != (height, width):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return image


def _is_empty(path: str | Path | IO[bytes]) -> bool:
    """Whether the file (a path, or an open binary file) has no bytes."""
    if isinstance(path, (str, Path)):
        return Path(path).stat().st_size == 0
    return path.seek(0, 2) == 0


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
