"""Small datasets written in the real on-disk formats, so the real loading code reads them."""

from __future__ import annotations

import csv
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.transforms import v2


def class_images(labels: np.ndarray, size: int = 28, channels: int = 0, seed: int = 0) -> np.ndarray:
    """uint8 images whose class is easy to learn: class k has a bright band at a k-dependent row.

    Returns (N, size, size) when `channels` is 0, else (N, size, size, channels).
    """
    rng = np.random.default_rng(seed)
    shape = (len(labels), size, size) + ((channels,) if channels else ())
    images = rng.integers(0, 60, size=shape, dtype=np.uint8)
    band = max(1, size // 14)
    for i, label in enumerate(labels):
        row = 2 + int(label) * (size - 4) // 10
        images[i, row : row + band] = 230
    return images


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """Write (N, H, W) uint8 images in the IDX3 format of (Fashion)MNIST."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """Write uint8 labels in the IDX1 format of (Fashion)MNIST."""
    path.write_bytes(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def make_fashion_mnist(root: Path, n_train: int = 320, n_test: int = 80, seed: int = 0) -> Path:
    """Write a tiny FashionMNIST into `root/FashionMNIST/raw` (unpacked IDX files); returns `root`."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", class_images(labels, seed=seed + n))
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write (N, 32, 32, 3) uint8 images as one batch file of the CIFAR-10 python version.

    The official files are Python 2 pickles of a dict whose `data` is (N, 3072) uint8, each row the red,
    green and blue 32x32 planes one after the other (row-major), and `labels` a list of ints. Their keys
    were Python 2 strings, which torchvision (`pickle.load(f, encoding="latin1")`) reads as `str`, so
    they are written as `str` here (`encoding="bytes"` would show them as b"data").
    """
    batch = {
        "batch_label": path.name,
        "labels": [int(label) for label in labels],
        "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1).astype(np.uint8),
        "filenames": [f"{path.name}_{i}.png" for i in range(len(images))],
    }
    with path.open("wb") as file:
        pickle.dump(batch, file, protocol=2)


def make_cifar10(root: Path, n_per_batch: int = 40, n_test: int = 40, seed: int = 0) -> Path:
    """Write a tiny CIFAR-10 into `root/cifar-10-batches-py` (5 training batches, test, meta); returns `root`.

    torchvision checks the files' MD5 sums, which generated files cannot match: tests replace
    `torchvision.datasets.cifar.check_integrity` by a check that the file exists.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = n_test if name == "test_batch" else n_per_batch
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_cifar_batch(folder / name, class_images(labels, size=32, channels=3, seed=seed + i), labels)
    meta = {"num_cases_per_batch": n_per_batch, "label_names": CIFAR10_CLASSES, "num_vis": 3072}
    with (folder / "batches.meta").open("wb") as file:
        pickle.dump(meta, file, protocol=2)
    return root


#: (height, width) and PIL mode of generated image files, cycled through: any size and mode is accepted.
IMAGE_FORMATS = [((20, 24), "RGB"), ((36, 30), "L"), ((28, 28), "RGBA")]


def make_image_folder(
    root: Path, class_names: tuple[str, ...] = ("cat", "dog", "frog"), n_per_class: int = 6, seed: int = 0
) -> list[tuple[str, int]]:
    """Write PNG images in one sub-folder per class, `root/<class>/<k>.png`, of mixed sizes and modes.

    Returns the (path relative to `root`, label id) of each image, in the order written.
    """
    labels = np.repeat(np.arange(len(class_names)), n_per_class)
    images = class_images(labels, size=36, channels=3, seed=seed)
    written = []
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        (height, width), mode = IMAGE_FORMATS[k % len(IMAGE_FORMATS)]
        relative = f"{class_names[label]}/{k}.png"
        (root / class_names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:height, :width]).convert(mode).save(root / relative)
        written.append((relative, int(label)))
    return written


def write_csv(path: Path, rows: list[tuple], header: tuple[str, ...] | None = None) -> Path:
    """Write `rows` (and a header row first, when given) as a CSV file; returns `path`."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def flatten_transforms(transform):
    """All transforms inside (nested) v2.Compose objects, in order."""
    if isinstance(transform, v2.Compose):
        for t in transform.transforms:
            yield from flatten_transforms(t)
    else:
        yield transform


def has_transform(transform, kind: type) -> bool:
    """Whether `transform` is, or contains (in nested v2.Compose objects), a transform of type `kind`."""
    return any(isinstance(t, kind) for t in flatten_transforms(transform))
