"""Predictions on image files with a trained checkpoint: load, rank, format and write them.

The library behind `python -m src.predict`, the CLI's `PredictionWriter` and the notebooks. The checkpoint
alone is enough: it carries the class names, the input channels and size and the normalisation of the
training data, so every image is prepared exactly as the evaluation data was.

    from src.predictions import predict_files
    predict_files("logs/quickstart/version_0/checkpoints/last.ckpt", ["photo.png"], top_k=3)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

import torch
from lightning.pytorch.utilities import AttributeDict
from torchvision.transforms import v2

from src.data.decode import read_image as decode_file
from src.data.paths import expand_image_paths
from src.errors import UserInputError
from src.files import check_output_file, replace_when_done
from src.models.classifier import ImageClassifier

#: Formats `--output` (and the PredictionWriter callback) can write, by file extension.
OUTPUT_FORMATS = (".csv", ".json")


def resolve_device(device: str = "auto") -> torch.device:
    """`auto`: the GPU when there is one, else the CPU; `cpu`; `cuda` (or `cuda:N`, which needs a GPU)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"--device: {device} asked for, but no CUDA GPU is available")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise UserInputError(f"--device: must be auto, cpu or cuda, got {device!r}") from err


def check_top_k(top_k: int, num_classes: int, key: str = "--top-k") -> int:
    """`top_k` when it is between 1 and `num_classes`, else a `UserInputError` naming `key`."""
    if not 1 <= top_k <= num_classes:
        raise UserInputError(f"{key}: must be between 1 and {num_classes} (the model's classes), got {top_k}")
    return top_k


def rank_predictions(
    paths: Sequence[object], probs: torch.Tensor, class_names: Sequence[str], top_k: int = 1
) -> list[dict]:
    """One dict per image: `path`, and the `top_k` best `classes` with their `probs`, best first.

    Args:
        paths: What names each image (its file path; or its index, for datasets without files).
        probs: Class probabilities (N, num_classes), row `i` for `paths[i]`.
        class_names: Name of each class, index = class id.
        top_k: How many classes to keep per image.
    """
    values, indices = probs.detach().float().cpu().topk(top_k, dim=1)  # sorted, largest first
    return [
        {"path": str(path), "classes": [class_names[i] for i in idx], "probs": vals}
        for path, idx, vals in zip(paths, indices.tolist(), values.tolist(), strict=True)
    ]


def check_output(output: str | Path, key: str = "--output") -> Path:
    """`output` as a Path when it ends with one of `OUTPUT_FORMATS` and can be written, else a
    `UserInputError` naming `key` (checked before predicting, so a mistake costs no time)."""
    return check_output_file(output, OUTPUT_FORMATS, key)


def write_predictions(rows: Sequence[dict], output: str | Path, key: str = "--output") -> Path:
    """Write `rank_predictions` rows to a `.csv` or `.json` file (format chosen by the extension).

    CSV: a header `path,class1,prob1,...,classK,probK`, then one row per image, probabilities with 6
    decimals. JSON: a list of `{"path": ..., "classes": [...], "probs": [...]}`, one per image. The file
    appears complete or not at all (`replace_when_done`).
    """
    path = check_output(output, key)
    with replace_when_done(path, key) as temporary:
        if path.suffix.lower() == ".json":
            temporary.write_text(json.dumps(list(rows), indent=1) + "\n")
        else:
            top_k = max((len(row["classes"]) for row in rows), default=1)
            header = ["path"] + [f"{name}{k}" for k in range(1, top_k + 1) for name in ("class", "prob")]
            with temporary.open("w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(header)
                for row in rows:
                    pairs = zip(row["classes"], row["probs"], strict=True)
                    writer.writerow([row["path"]] + [c for name, p in pairs for c in (name, f"{p:.6f}")])
    return path


def format_rows(rows: Sequence[dict]) -> list[str]:
    """Lines for the terminal: the path (padded), then `class prob` pairs, best first.

    >>> format_rows([{"path": "a.png", "classes": ["Bag", "Coat"], "probs": [0.9, 0.05]}])
    ['a.png  Bag 0.900  Coat 0.050']
    """
    width = max((len(row["path"]) for row in rows), default=0)
    return [
        row["path"].ljust(width)
        + "".join(f"  {name} {p:.3f}" for name, p in zip(row["classes"], row["probs"], strict=True))
        for row in rows
    ]


#: An image as the model's input, before normalisation: float32 (C, H, W) scaled to [0, 1].
TO_TENSOR = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def read_image(
    model: ImageClassifier,
    path: str | Path | IO[bytes],
    max_pixels: int | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """One image file (or open binary file) as `model` expects it, before normalisation: decoded with the
    checkpoint's `in_channels` and `image_size` as training's default path decodes files
    (`src.data.decode.read_image`, which also says what the arguments are), then `TO_TENSOR`."""
    hparams = cast(AttributeDict, model.hparams)
    image = decode_file(path, hparams.in_channels, tuple(hparams.image_size), max_pixels, name)
    return TO_TENSOR(image)


@torch.inference_mode()
def class_probabilities(model: ImageClassifier, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Class probabilities (N, num_classes) of `read_image` tensors: normalised with the training data's
    mean/std and run through `model` as one batch on its device."""
    batch = torch.stack(list(images)).to(model.input_mean.device)
    return model.probabilities(model.normalize(batch))


def predict_files(
    checkpoint: str | Path,
    paths: Sequence[str | Path] | str,
    top_k: int = 1,
    device: str = "auto",
    batch_size: int = 64,
    weights_only: bool = True,
    tta: bool | None = None,
) -> list[dict]:
    """Predict image files with a checkpoint; one dict per image, in the order of `paths`.

    Each image is loaded as the model's evaluation data was (`read_image`: the checkpoint's `in_channels`
    and `image_size`, [0, 1] floats) and normalised with its `mean`/`std` (`class_probabilities`).

    Args:
        checkpoint: A `.ckpt` file written by training (`ImageClassifier`).
        paths: Image files, folders (their image files, sorted; not sub-folders) or glob patterns.
        top_k: How many classes to return per image, best first.
        device: `auto` (GPU when available), `cpu` or `cuda`.
        batch_size: Images per forward pass.
        weights_only: Refuse a checkpoint of pickled Python objects (see `safe_load`).
        tta: Average each image's probabilities with its mirror image's (None: the checkpoint's `tta`).

    Returns:
        `[{"path": "x.png", "classes": ["Sneaker", ...], "probs": [0.973, ...]}, ...]`, `top_k` each.

    Raises:
        UserInputError: A missing checkpoint or image, an empty folder, a pattern without a match, an
            unreadable image, a file that is not a checkpoint of this project (or holds pickled objects
            while `weights_only`), a `top_k` out of range (one line naming it).
    """
    if batch_size < 1:
        raise UserInputError(f"--batch-size: must be at least 1, got {batch_size}")
    files = expand_image_paths(paths)
    model = ImageClassifier.from_checkpoint(checkpoint, resolve_device(device), weights_only, tta=tta)
    check_top_k(top_k, len(model.class_names))
    return predict_with(model, files, top_k, batch_size)


def predict_with(
    model: ImageClassifier, files: Sequence[str | Path], top_k: int, batch_size: int
) -> list[dict]:
    """`predict_files` with the model already loaded: rows for `files` (image files), in batches."""
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        probs = class_probabilities(model, [read_image(model, f) for f in chunk])
        rows += rank_predictions(chunk, probs, model.class_names, top_k)
    return rows
