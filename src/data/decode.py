"""Fast image decoding: `read_image`, the pixels of `load_image` as a uint8 tensor, JPEGs by torchvision.

A leaf module (PIL, torch and torchvision; no Lightning). RGB images from JPEG files, the bulk of photo
datasets, are decoded by `torchvision.io.decode_image` (libjpeg-turbo, as PIL, with the same pixels) and
resized by torch, which resizes uint8 RGB about four times faster than PIL: about twice PIL's images per
second in all (see `benchmarks/photos.py`). The EXIF orientation is read from the header by PIL, as
`load_image` reads it. Everything else goes to `load_image` itself, so its pixels and its one-line
errors are unchanged:
- grayscale: torchvision's grey decode of a colour JPEG is libjpeg's luma, which skips the clipping of
  the colour conversion (up to 10 levels off PIL's), and PIL's luma of torchvision's RGB costs what it
  saves; PIL also resizes one channel as fast as torch;
- files under `SMALL_FILE` bytes (thumbnails, MNIST- or CIFAR-sized images): PIL's cost per file is lower;
- PNG: decoding is zlib's work whoever calls it (no faster), and torchvision 0.29's `decode_png` crashes
  the process (SIGSEGV) on some damaged files instead of raising an error;
- other formats (BMP, GIF, WebP, TIFF, ...) and JPEG modes (e.g. CMYK without an Adobe marker), and any
  file that fails to open or decode.

Without a resize the pixels are `load_image`'s. The resize is torch's antialiased bilinear one (a port of
PIL's, on uint8), which rounds differently: at most 1 level apart from PIL's (measured on photos and on
every mode, see `tests/test_decode.py` and `benchmarks/photos.py`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Literal

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from src.data.images import load_image

#: Which library decodes the image files: `torchvision` (`read_image`, uint8 tensors) or `pil`
#: (`load_image`, PIL images).
Decoder = Literal["torchvision", "pil"]

#: Files smaller than this (bytes) go to `load_image`: PIL's fixed cost per image is lower.
SMALL_FILE = 4096
#: The EXIF orientation tag.
ORIENTATION = 0x0112


def read_image(
    path: str | Path | IO[bytes],
    channels: int = 3,
    image_size: tuple[int, int] | None = None,
    max_pixels: int | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """`load_image` as a uint8 tensor (channels, height, width), decoded by torchvision where it is faster.

    RGB from JPEG files (RGB, grayscale or Adobe CMYK) is decoded by torchvision and resized by torch;
    everything else is `load_image` then `pil_to_tensor` (see the module's docstring). `max_pixels` is
    checked from the header, before decoding.

    Args and errors: those of `load_image` (the same one-line messages).
    """
    name = str(path) if name is None else name
    data = None
    if channels == 3 and not _small(path):
        data = _read(path)
        orientation = None if data is None else _jpeg_orientation(data, max_pixels)
        if data is not None and orientation is not None:
            try:
                return _decode_jpeg(data, orientation, image_size)
            except RuntimeError:  # damaged data: load_image says what is wrong
                pass
    source = path if data is None else io.BytesIO(data)
    return F.pil_to_tensor(load_image(source, channels, image_size, max_pixels, name))


def image_loader(
    decoder: Decoder, channels: int = 3, image_size: tuple[int, int] | None = None
) -> Callable[[str | Path], torch.Tensor | Image.Image]:
    """A picklable function (for DataLoader workers) that opens one file with `decoder`: `read_image`
    (uint8 tensors) for `torchvision`, `load_image` (PIL images) for `pil`."""
    if decoder not in ("torchvision", "pil"):
        raise ValueError(f"decoder must be torchvision or pil, got {decoder!r}")
    function = read_image if decoder == "torchvision" else load_image
    return partial(function, channels=channels, image_size=image_size)


def _small(path: str | Path | IO[bytes]) -> bool:
    """Whether `path` names a file under `SMALL_FILE` bytes, or one that cannot be examined."""
    if not isinstance(path, (str, Path)):
        return False
    try:
        return os.stat(path).st_size < SMALL_FILE
    except OSError:  # missing, or not allowed: load_image says so
        return True


def _read(path: str | Path | IO[bytes]) -> bytes | None:
    """The bytes of the file (None when it cannot be read: load_image says why)."""
    try:
        return Path(path).read_bytes() if isinstance(path, (str, Path)) else path.read()
    except OSError:
        return None


def _jpeg_orientation(data: bytes, max_pixels: int | None) -> int | None:
    """The EXIF orientation of the JPEG `data` (1: upright) from its header, as `exif_transpose` reads it;
    None when torchvision cannot give PIL's pixels (not a JPEG, another mode) or `load_image` refuses it."""
    try:
        with Image.open(io.BytesIO(data)) as opened:  # reads the header only
            if max_pixels is not None and opened.width * opened.height > max_pixels:
                return None  # load_image refuses it, from the header
            cmyk = opened.mode == "CMYK" and "adobe" in opened.info  # torchvision converts it as PIL does
            if opened.format not in ("JPEG", "MPO") or not (opened.mode in ("L", "RGB") or cmyk):
                return None
            return opened.getexif().get(ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _decode_jpeg(data: bytes, orientation: int, image_size: tuple[int, int] | None) -> torch.Tensor:
    """The JPEG `data` as RGB uint8 (3, H, W), turned upright for `orientation`, resized to `image_size`.

    The tensors keep torchvision's channels-last memory, which torch resizes fastest; a quarter-turned
    photo is resized before it is turned, as the turned memory resizes three times slower.
    """
    image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB)
    turned = orientation in (5, 6, 7, 8)  # PIL's TRANSPOSE, ROTATE_270, TRANSVERSE and ROTATE_90
    size = image_size[::-1] if turned and image_size else image_size  # of the image as stored
    if size is not None and tuple(image.shape[-2:]) != tuple(size):
        image = F.resize(image, list(size), InterpolationMode.BILINEAR, antialias=True)
    image = image.transpose(-2, -1) if turned else image
    flips = {2: (-1,), 3: (-2, -1), 4: (-2,), 6: (-1,), 7: (-2, -1), 8: (-2,)}.get(orientation)
    return image.flip(flips) if flips else image
