"""Photo-sized JPEG files, and how fast PIL (`load_image`) and torchvision (`read_image`) decode them.

    python -m benchmarks.photos --out /tmp/photos --count 2000
    python -m benchmarks.photos --out /tmp/photos --count 2000 --bench 0     # only write the files

Writes `--count` JPEG files (quality 90) into `--out`, made from the two photos scikit-learn ships
(`sklearn.datasets.load_sample_images()`: china.jpg and flower.jpg, 640x427 each): each one enlarged by a
random factor, cropped at random to a typical camera size (640x480, 800x600 or 1024x768, landscape or
portrait), flipped left-right half the time, with a little grain so the files weigh what photos weigh.
`--out/photos.csv` lists them as `path,label` rows, 4 classes: which photo, landscape or portrait. The
folder and CSV serve as a `CSVImageDataModule` dataset (`--data.annotations_file /tmp/photos/photos.csv`).

A folder that already holds them (same `--count`) is reused. Then, in this one process (torch on
`--threads` threads, 1 by default, as PIL uses one), it decodes the first `--bench` files to each
`--size` with `--channels` channels (3: RGB, the default; 1: grayscale) with each decoder, and prints
images per second (best of `--repeats` passes) and how far torchvision's pixels are from PIL's: the
largest difference and the share of values that differ.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_sample_images
from torchvision.transforms.v2.functional import pil_to_tensor

from src.data.decode import read_image
from src.data.images import load_image

#: Camera sizes the crops take, (width, height) of a landscape photo.
SIZES = [(640, 480), (800, 600), (1024, 768)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.photos", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the JPEGs and photos.csv to")
    parser.add_argument("--count", type=int, default=2000, help="JPEG files to write (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops, scales and flips")
    parser.add_argument("--bench", type=int, default=500, help="files to decode per measurement (0: none)")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        action="append",
        metavar=("H", "W"),
        help="decode to this size (repeatable)",
    )
    parser.add_argument("--channels", type=int, nargs="+", default=[3], help="1 and/or 3 (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the best counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser.parse_args(argv)


def make_photos(out: Path, count: int, seed: int = 0) -> Path:
    """Write `count` photo-like JPEGs and `photos.csv` (`path,label`) into `out`; returns the CSV.

    A folder whose `photos.csv` already lists `count` photos is kept as it is.
    """
    path = out / "photos.csv"
    if path.is_file() and len(path.read_text().splitlines()) == count + 1:
        return path
    sample = load_sample_images()
    names = [Path(f).stem for f in sample.filenames]
    photos = [Image.fromarray(image) for image in sample.images]
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        which = int(rng.integers(len(photos)))
        photo = photos[which]
        width, height = SIZES[int(rng.integers(len(SIZES)))]
        portrait = bool(rng.random() < 0.3)
        if portrait:
            width, height = height, width
        scale = max(width / photo.width, height / photo.height) * rng.uniform(1.0, 1.5)
        enlarged = photo.resize(
            (round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC
        )
        left = int(rng.integers(enlarged.width - width + 1))
        top = int(rng.integers(enlarged.height - height + 1))
        crop = enlarged.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        grain = rng.integers(-4, 5, (height, width, 3), dtype=np.int16)
        pixels = np.clip(np.asarray(crop, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
        name = f"{i:05d}.jpg"
        Image.fromarray(pixels).save(out / name, quality=90)
        rows.append((name, f"{names[which]}_{'portrait' if portrait else 'landscape'}"))
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


def images_per_second(
    decoders: list[Callable[[Path], object]], files: list[Path], repeats: int
) -> list[float]:
    """Files decoded per second by each of `decoders`, the best of `repeats` passes over `files`.

    The decoders take turns on each file, so a machine busy with other work slows them alike.
    """
    best = [float("inf")] * len(decoders)
    for _ in range(repeats):
        seconds = [0.0] * len(decoders)
        for path in files:
            for k, decode in enumerate(decoders):
                start = time.perf_counter()
                decode(path)
                seconds[k] += time.perf_counter() - start
        best = [min(b, s) for b, s in zip(best, seconds, strict=True)]
    return [len(files) / b for b in best]


def difference(files: list[Path], channels: int, size: tuple[int, int]) -> tuple[int, float]:
    """The largest difference between `read_image`'s and `load_image`'s pixels, and the share that differ."""
    largest, differing, total = 0, 0, 0
    for path in files:
        reference = pil_to_tensor(load_image(path, channels, size)).int()
        delta = (read_image(path, channels, size).int() - reference).abs()
        largest = max(largest, int(delta.max()))
        differing += int((delta > 0).sum())
        total += delta.numel()
    return largest, differing / total


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    csv_path = make_photos(args.out, args.count, args.seed)
    print(f"{args.count} JPEGs listed in {csv_path}")
    files = sorted(args.out.glob("*.jpg"))[: args.bench]
    if not files:
        return
    megapixels = np.mean([np.prod(Image.open(path).size) for path in files]) / 1e6
    print(
        f"decoding {len(files)} of them ({megapixels:.2f} Mpixels on average), torch threads: {args.threads}"
    )
    header = ("size", "ch", "PIL img/s", "torchvision img/s", "speedup", "max diff", "differ")
    print("{:>9} {:>3} {:>10} {:>18} {:>8} {:>9} {:>8}".format(*header))
    for channels in args.channels:
        for height, width in args.size or [(224, 224), (64, 64)]:
            size = (height, width)
            decoders = [partial(f, channels=channels, image_size=size) for f in (load_image, read_image)]
            pil, fast = images_per_second(decoders, files, args.repeats)
            largest, share = difference(files, channels, size)
            print(
                f"{height:>4}x{width:<4} {channels:>3} {pil:>10.1f} {fast:>18.1f} {fast / pil:>7.2f}x "
                f"{largest:>9} {share:>7.2%}"
            )


if __name__ == "__main__":
    main()
