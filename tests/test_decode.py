"""`read_image` (torchvision decoding) against `load_image` (PIL): the same pixels in every mode, the same
one-line errors, and which decoder the image-file datamodules use."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import pil_to_tensor

import src.data.decode as decode
from src.data import CSVImageDataModule, ImageFilesDataset, ImageFolderDataModule
from src.data.decode import image_loader, read_image
from src.data.images import ImageTooLargeError, load_image
from src.errors import UserInputError
from tests.helpers.files import write_csv

SIZE = (60, 80)  # (height, width) of the generated files
#: Sizes to resize to: smaller (both ways), larger, and a different aspect ratio.
RESIZES = [(24, 24), (17, 51), (90, 100)]
#: The most a resized RGB pixel differs from PIL's (measured: 1, on photos too; see the report of
#: `benchmarks/photos.py`). Grayscale and unresized images are identical.
RESIZE_TOLERANCE = 1


def picture(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 picture: smooth colour gradients, a few sharp-edged discs and some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [np.sin(6 * x * (c + 1) + 3 * y + c) * 90 + 128 for c in range(channels)]
    image = np.stack(planes, axis=-1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, 1, 3) * [height, width, min(height, width) / 2]
        disc = (np.mgrid[0:height, 0:width][0] - cy) ** 2 + (np.mgrid[0:height, 0:width][1] - cx) ** 2 < r**2
        image[disc] = rng.integers(0, 256, channels)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_png16(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit PNG (PIL writes 16-bit grey only): colour type 0, 2 or 6 from 1, 3 or 4 channels."""
    height, width = pixels.shape[:2]
    colour_type = {1: 0, 3: 2, 4: 6}[1 if pixels.ndim == 2 else pixels.shape[2]]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _with_orientation(orientation: int, fmt: str = "JPEG"):
    def save(path: Path, rgb: np.ndarray) -> None:
        image = Image.fromarray(rgb)
        exif = image.getexif()
        exif[0x0112] = orientation
        image.save(path, format=fmt, exif=exif, **({"quality": 90} if fmt == "JPEG" else {}))

    return save


def _save(mode: str | None = None, **options):
    def save(path: Path, rgb: np.ndarray) -> None:
        image = Image.fromarray(rgb)
        (image if mode is None else image.convert(mode)).save(path, **options)

    return save


def _with_alpha(mode: str):
    def save(path: Path, rgb: np.ndarray) -> None:
        alpha = picture(*rgb.shape[:2], channels=1, seed=5)
        alpha[:, :10], alpha[:, -10:] = 0, 255  # fully transparent, fully opaque, and everything between
        Image.fromarray(np.concatenate([rgb, alpha], axis=-1)).convert(mode).save(path)

    return save


def _palette(transparency) -> object:
    def save(path: Path, rgb: np.ndarray) -> None:
        Image.fromarray(rgb).quantize(40).save(path, transparency=transparency)

    return save


def _cmyk(path: Path, rgb: np.ndarray) -> None:
    black = picture(*rgb.shape[:2], channels=1, seed=7)  # a real K channel (PIL's RGB->CMYK has K=0)
    Image.fromarray(np.concatenate([255 - rgb, black], axis=-1), "CMYK").save(path, quality=90)


def _gray16(path: Path, rgb: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    Image.fromarray(
        rgb[..., 0].astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape[:2], np.uint16)
    ).save(path)


def _colour16(channels: int):
    def save(path: Path, rgb: np.ndarray) -> None:
        rng = np.random.default_rng(3)
        write_png16(path, rng.integers(0, 65536, (*rgb.shape[:2], channels), dtype=np.uint16))

    return save


def _float_tiff(path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb[..., 1].astype(np.float32) / 255).save(path)


#: Files torchvision decodes: name -> how to write it from an RGB picture.
FAST = {
    "rgb.jpg": _save(quality=90),
    "progressive.jpg": _save(quality=85, progressive=True),
    "subsampling_444.jpg": _save(quality=95, subsampling=0),
    "gray.jpg": _save("L", quality=90),
    "cmyk.jpg": _cmyk,
    "two_frames.mpo": lambda path, rgb: Image.fromarray(rgb).save(
        path, format="MPO", save_all=True, append_images=[Image.fromarray(255 - rgb)], quality=90
    ),
    **{f"orientation{k}.jpg": _with_orientation(k) for k in range(2, 9)},
}
#: Files `load_image` decodes (read_image hands them over; see `src.data.decode` for why).
FALLBACK = {
    "rgb.png": _save(),
    "gray.png": _save("L"),
    "bilevel.png": _save("1"),
    "palette.png": _save("P"),
    "palette_4bit.png": lambda path, rgb: Image.fromarray(rgb).quantize(12).save(path, bits=4),
    "rgba.png": _with_alpha("RGBA"),
    "gray_alpha.png": _with_alpha("LA"),
    "palette_alpha.png": _palette(bytes(range(0, 240, 6))),
    "palette_one_transparent.png": _palette(3),
    "gray_transparent.png": lambda path, rgb: Image.fromarray(rgb[..., 0] // 64 * 64).save(
        path, transparency=64
    ),
    "gray16.png": _gray16,
    "rgb16.png": _colour16(3),
    "rgba16.png": _colour16(4),
    "orientation6.png": _with_orientation(6, "PNG"),
    "rgb.bmp": _save(),
    "palette.gif": _save("P"),
    "rgb.webp": _save(quality=90),
    "rgba.webp": _with_alpha("RGBA"),
    "rgb.tif": _save(),
    "float.tif": _float_tiff,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("modes")
    rgb = picture(*SIZE)
    for name, save in {**FAST, **FALLBACK}.items():
        save(folder / name, rgb)
    return folder


@pytest.fixture(autouse=True)
def _small_files_too(monkeypatch):
    """The generated files are small: let torchvision decode them all the same (see the last test)."""
    monkeypatch.setattr(decode, "SMALL_FILE", 0)


@pytest.fixture
def pil_calls(monkeypatch) -> list[str]:
    """The files `read_image` hands over to `load_image`."""
    calls: list[str] = []

    def counted(path, channels=3, image_size=None, max_pixels=None, name=None):
        calls.append(Path(name or str(path)).name)
        return load_image(path, channels, image_size, max_pixels, name)

    monkeypatch.setattr(decode, "load_image", counted)
    return calls


def reference(path: Path, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    return pil_to_tensor(load_image(path, channels, size))


# --- the same pixels --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted({**FAST, **FALLBACK}))
def test_every_mode_gives_the_pixels_of_load_image(files, pil_calls, name, channels):
    image = read_image(files / name, channels)
    assert image.dtype == torch.uint8 and image.shape[0] == channels
    assert torch.equal(image, reference(files / name, channels))
    assert pil_calls == ([] if name in FAST and channels == 3 else [name])  # which torchvision decoded


@pytest.mark.parametrize("size", RESIZES, ids=str)
@pytest.mark.parametrize("name", sorted(FAST))
def test_resized_rgb_is_within_a_level_of_pil_and_grayscale_is_identical(files, name, size):
    difference = (read_image(files / name, 3, size).int() - reference(files / name, 3, size).int()).abs()
    assert difference.shape == (3, *size) and difference.max() <= RESIZE_TOLERANCE
    assert difference.float().mean() < 0.2  # most pixels are identical
    assert torch.equal(read_image(files / name, 1, size), reference(files / name, 1, size))


def test_grayscale_is_left_to_pil_as_libjpegs_own_grey_differs(files):
    # libjpeg's grey decode skips the clipping of the colour conversion: up to ~10 levels off PIL's luma.
    data = torch.frombuffer(bytearray((files / "rgb.jpg").read_bytes()), dtype=torch.uint8)
    libjpeg_grey = decode_image(data, ImageReadMode.GRAY)
    assert (libjpeg_grey.int() - reference(files / "rgb.jpg", 1).int()).abs().max() > 2
    assert torch.equal(read_image(files / "rgb.jpg", 1), reference(files / "rgb.jpg", 1))


def test_small_files_are_left_to_pil(files, pil_calls, monkeypatch):
    monkeypatch.setattr(decode, "SMALL_FILE", (files / "rgb.jpg").stat().st_size + 1)
    assert torch.equal(read_image(files / "rgb.jpg"), reference(files / "rgb.jpg", 3))
    assert pil_calls == ["rgb.jpg"]


def test_an_open_binary_file_reads_like_its_path(files):
    for name in ("rgb.jpg", "rgb.bmp"):
        upload = io.BytesIO((files / name).read_bytes())
        assert torch.equal(
            read_image(upload, 3, (20, 20), name="upload"), read_image(files / name, 3, (20, 20))
        )


# --- the same errors -------------------------------------------------------------------------------------


def _truncated(fmt: str):
    def make(path: Path) -> None:
        Image.fromarray(picture(64, 64)).save(path, format=fmt)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # headers whole, pixels cut

    return make


def _damaged_png(path: Path) -> None:
    """A PNG with one byte changed in its pixel data (torchvision 0.29's decode_png crashes on it)."""
    Image.fromarray(picture(64, 64)).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


BAD = {
    "missing.jpg": lambda path: None,
    "empty.jpg": lambda path: path.write_bytes(b""),
    "truncated.jpg": _truncated("JPEG"),
    "truncated.png": _truncated("PNG"),
    "damaged.png": _damaged_png,
    "text.png": lambda path: path.write_text("hello, not a PNG\n"),
    "folder.jpg": lambda path: path.mkdir(),
}


def error_of(function, *args, **kwargs) -> str:
    with pytest.raises(UserInputError) as info:
        function(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_file_is_load_images_one_line(tmp_path, name):
    BAD[name](tmp_path / name)
    message = error_of(load_image, tmp_path / name)
    assert message.startswith(f"{tmp_path / name}: ") and "\n" not in message
    assert error_of(read_image, tmp_path / name, 3, (8, 8)) == message
    upload = io.BytesIO((tmp_path / name).read_bytes()) if (tmp_path / name).is_file() else None
    if upload is not None:  # an upload is named by `name`
        assert error_of(read_image, upload, name="upload") == error_of(
            load_image, io.BytesIO(upload.getvalue()), name="upload"
        )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_load_images_one_line(files, tmp_path):
    path = tmp_path / "secret.jpg"
    path.write_bytes((files / "rgb.jpg").read_bytes())
    path.chmod(0)
    assert (
        error_of(read_image, path)
        == error_of(load_image, path)
        == f"{path}: cannot read the image: permission denied"
    )


def test_too_many_pixels_are_refused_from_the_header_before_decoding(files, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(decode, "decode_image", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(
        ImageTooLargeError, match=r"rgb.jpg: image too large \(80x60 = 4800 pixels; the limit is 4799\)"
    ):
        read_image(files / "rgb.jpg", max_pixels=4799)


def test_a_decompression_bomb_is_refused_as_by_load_image(files, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 4800 > 2 x 2000 pixels
    message = error_of(load_image, files / "rgb.jpg")
    assert "image too large" in message and error_of(read_image, files / "rgb.jpg") == message


# --- which decoder the datamodules use -------------------------------------------------------------------


def test_the_loader_is_picklable_for_dataloader_workers(files):
    loader = pickle.loads(pickle.dumps(image_loader("torchvision", 1, (8, 8))))
    assert loader(files / "rgb.jpg").shape == (1, 8, 8)
    assert isinstance(pickle.loads(pickle.dumps(image_loader("pil")))(files / "rgb.jpg"), Image.Image)


def test_image_files_dataset_decodes_with_its_decoder(files):
    for decoder, kind in (("torchvision", torch.Tensor), ("pil", Image.Image)):
        dataset = ImageFilesDataset([files / "rgb.jpg"], [0], None, 3, (8, 8), decoder=decoder)
        assert isinstance(dataset[0][0], kind)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """JPEG photos in class folders (`cat/0.jpg`, ...), also listed in `train.csv`."""
    root = tmp_path_factory.mktemp("classes")
    rows = []
    for k in range(6):
        name = f"{('cat', 'dog')[k % 2]}/{k}.jpg"
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(picture(*SIZE, seed=k)).save(root / name, quality=90)
        rows.append((name, k % 2))
    write_csv(root / "train.csv", rows)
    return root


def _datamodules(root: Path, **kwargs):
    kwargs = {"image_size": (12, 16), "val_size": 2, "num_workers": 0} | kwargs
    yield ImageFolderDataModule(root=str(root), **kwargs)
    yield CSVImageDataModule(annotations_file=str(root / "train.csv"), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({}, torch.Tensor),
        ({"decoder": "pil"}, Image.Image),
        ({"train_transform": v2.Compose([v2.PILToTensor()])}, Image.Image),
        ({"eval_transform": v2.Compose([v2.PILToTensor()])}, Image.Image),
    ],
    ids=["defaults", "decoder-pil", "train_transform", "eval_transform"],
)
def test_datamodules_yield_tensors_with_the_default_transforms_else_pil_images(folder, kwargs, kind):
    for dm in _datamodules(folder, **kwargs):
        image, _ = dm.make_dataset(train=True, transform=None)[0]
        assert isinstance(image, kind), type(dm).__name__
        dm.predict_paths = [str(folder / "cat")]
        assert isinstance(dm.make_predict_dataset(dm.predict_paths).loader(folder / "cat" / "0.jpg"), kind)


def test_both_decoders_give_the_same_normalised_samples(folder):
    samples = []
    for decoder in ("torchvision", "pil"):
        dm = next(_datamodules(folder, decoder=decoder, augment=False))
        dataset = dm.make_dataset(train=True, transform=dm.eval_transforms())
        samples.append(torch.stack([dataset[i][0] for i in range(len(dataset))]))
    assert samples[0].dtype == torch.float32
    assert (samples[0] - samples[1]).abs().max() <= RESIZE_TOLERANCE / 255 / 0.5 + 1e-6


def test_a_wrong_decoder_is_one_line(folder):
    with pytest.raises(UserInputError, match="^data.decoder: must be torchvision or pil, got 'opencv'$"):
        next(_datamodules(folder, decoder="opencv"))


@pytest.mark.parametrize(("decoder", "checked"), [("torchvision", 6), ("pil", 0)])
def test_skip_bad_images_reads_with_the_same_decoder(folder, monkeypatch, decoder, checked):
    used: list[str] = []

    def recorded(path, **kwargs):
        used.append(Path(path).name)
        return read_image(path, **kwargs)

    monkeypatch.setattr(decode, "read_image", recorded)
    CSVImageDataModule(annotations_file=str(folder / "train.csv"), skip_bad_images=True, decoder=decoder)
    assert len(used) == checked
