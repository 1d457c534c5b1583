"""Small datasets written in the real on-disk formats, so the real loading code reads them."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


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
