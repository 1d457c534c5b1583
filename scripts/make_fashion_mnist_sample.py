"""Write the bundled FashionMNIST sample (PNG files + CSV lists) from the official raw files.

    python scripts/make_fashion_mnist_sample.py --root data --out samples/fashion_mnist

`--root` is a folder with `FashionMNIST/raw/` (as `python -m src.cli fit --config configs/fashion_mnist.yaml`
downloads it). The sample is the first N images of each class (in file order) of the official training set
(split into train and val) and of the official test set, so running the script again writes the same files.
Each split is a folder with one sub-folder per class and a CSV listing the same files.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from torchvision.datasets import FashionMNIST

LICENSE = """\
This sample holds {total} images of Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist),
made by scripts/make_fashion_mnist_sample.py from the official files.

The MIT License (MIT)
Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def first_per_class(labels: list[int], per_class: int, skip: int = 0) -> list[int]:
    """Indices of the first `per_class` samples of each class, after skipping `skip` of each class."""
    seen: dict[int, int] = {}
    picked = []
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if skip < seen[label] <= skip + per_class:
            picked.append(i)
    return picked


def folder_name(class_name: str) -> str:
    """A class name usable as a folder name ("T-shirt/top" -> "T-shirt_top")."""
    return class_name.replace("/", "_")


def write_split(dataset: FashionMNIST, indices: list[int], out: Path, split: str) -> None:
    """Save the images as `<out>/<split>/<class>/<index>.png` and list them in `<out>/<split>.csv`.

    The same files serve both layouts: one sub-folder per class (ImageFolder) and a CSV of
    `path,label` rows (CSV-listed images), with the folder names as class names.
    """
    with open(out / f"{split}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for i in indices:
            image, label = dataset[i]
            name = folder_name(dataset.classes[label])
            path = f"{split}/{name}/{i:05d}.png"
            (out / split / name).mkdir(parents=True, exist_ok=True)
            image.save(out / path, optimize=True)
            writer.writerow([path, name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data", help="folder that holds FashionMNIST/raw/")
    parser.add_argument("--out", default="samples/fashion_mnist", help="output folder")
    parser.add_argument("--train", type=int, default=200, help="training images per class")
    parser.add_argument("--val", type=int, default=50, help="validation images per class")
    parser.add_argument("--test", type=int, default=50, help="test images per class")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = FashionMNIST(args.root, train=True, download=False)
    test = FashionMNIST(args.root, train=False, download=False)
    train_labels, test_labels = train.targets.tolist(), test.targets.tolist()
    write_split(train, first_per_class(train_labels, args.train), out, "train")
    write_split(train, first_per_class(train_labels, args.val, skip=args.train), out, "val")
    write_split(test, first_per_class(test_labels, args.test), out, "test")
    total = 10 * (args.train + args.val + args.test)
    (out / "LICENSE.txt").write_text(LICENSE.format(total=total))
    print(f"wrote {total} images and train.csv, val.csv, test.csv to {out}")


if __name__ == "__main__":
    main()
