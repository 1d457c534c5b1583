"""Image decoding: any image file as an 8-bit grayscale or RGB PIL image of a given size.

A leaf module (PIL and NumPy only): datasets, prediction and serving all open images through `load_image`,
so an image gets the same pixels whichever way it reaches the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        with Image.open(path) as opened:
            image = _to_mode(ImageOps.exif_transpose(opened), MODES[channels])
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
