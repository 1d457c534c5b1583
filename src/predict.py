"""Predict the classes of image files with a trained checkpoint: `python -m src.predict CKPT PATH [PATH ...]`.

The checkpoint alone is enough: it carries the class names, the input channels and size and the
normalisation of the training data, so every image is prepared exactly as the evaluation data was.

    python -m src.predict logs/quickstart/version_0/checkpoints/last.ckpt photo.png 'shoes/*.jpg' --top-k 3

From Python (notebooks): `predict_files(checkpoint, paths, top_k=1)` returns one dict per image.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torchvision.transforms import v2

from src.data.image_files import load_image
from src.data.paths import expand_image_paths
from src.errors import UserInputError, exit_on_user_error
from src.models.loading import load_classifier

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


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu", allow_pickle: bool = False):
    """The `ImageClassifier` of a checkpoint file, in eval mode on `device` (see `load_classifier`).

    The file is read with `weights_only=True` (tensors and plain Python values only, so no pickled code
    runs) unless `allow_pickle`, which also loads legacy files of pickled objects (only trusted files).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    return load_classifier(checkpoint, device, allow_pickle=allow_pickle, label="CHECKPOINT")


def check_top_k(top_k: int, num_classes: int, key: str = "--top-k") -> int:
    """`top_k` when it is between 1 and `num_classes`, else a `UserInputError` naming `key`."""
    if not 1 <= top_k <= num_classes:
        raise UserInputError(f"{key}: must be between 1 and {num_classes} (the model's classes), got {top_k}")
    return top_k


def rank_predictions(
    paths: Sequence[str], probs: torch.Tensor, class_names: Sequence[str], top_k: int = 1
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
    path = Path(output)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise UserInputError(f"{key}: {output} must end with .csv or .json")
    if path.is_dir():
        raise UserInputError(f"{key}: {output} is a folder")
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is not None and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise UserInputError(f"{key}: cannot write {output}: {folder} is not a writable folder")
    return path


@contextlib.contextmanager
def replace_when_done(path: str | Path, key: str = "--output") -> Iterator[Path]:
    """Write a file all at once: yields a temporary file next to `path`, renamed onto `path` (`os.replace`,
    atomic) when the block ends without an error, deleted otherwise. So `path` is either the old file (or
    none) or the complete new one, never half-written, even when the process is killed while writing.

    Raises:
        UserInputError: The file cannot be written (one line naming `key` and the file).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as err:
        raise UserInputError(f"{key}: cannot write {path} ({err.strerror or err})") from err
    finally:
        temporary.unlink(missing_ok=True)


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


@torch.inference_mode()
def predict_files(
    checkpoint: str | Path,
    paths: Sequence[str | Path] | str,
    top_k: int = 1,
    device: str = "auto",
    batch_size: int = 64,
    allow_pickle: bool = False,
) -> list[dict]:
    """Predict image files with a checkpoint; one dict per image, in the order of `paths`.

    Each image is loaded as the model's evaluation data was: `load_image` with the checkpoint's
    `in_channels` and `image_size`, scaled to [0, 1] floats and normalised with its `mean`/`std`.

    Args:
        checkpoint: A `.ckpt` file written by training (`ImageClassifier`).
        paths: Image files, folders (their image files, sorted; not sub-folders) or glob patterns.
        top_k: How many classes to return per image, best first.
        device: `auto` (GPU when available), `cpu` or `cuda`.
        batch_size: Images per forward pass.
        allow_pickle: Also load a checkpoint of pickled Python objects, such as a whole model saved with
            `torch.save(model)`. Unpickling runs code from the file: only for files you trust.

    Returns:
        `[{"path": "x.png", "classes": ["Sneaker", ...], "probs": [0.973, ...]}, ...]`, `top_k` each.

    Raises:
        UserInputError: A missing checkpoint or image, an empty folder, a pattern without a match, an
            unreadable image, a file that is not a checkpoint of this project (or holds pickled objects,
            without `allow_pickle`), a `top_k` out of range (one line naming it).
    """
    if batch_size < 1:
        raise UserInputError(f"--batch-size: must be at least 1, got {batch_size}")
    files = expand_image_paths(paths)
    model = load_model(checkpoint, resolve_device(device), allow_pickle)
    hparams = model.hparams
    check_top_k(top_k, len(model.class_names))
    image_size = tuple(hparams.image_size)
    to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    device = model.input_mean.device
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        images = [
            to_tensor(load_image(f, channels=hparams.in_channels, image_size=image_size)) for f in chunk
        ]
        batch = model.normalize(torch.stack(images).to(device))
        probs = model(batch).softmax(dim=-1)
        rows += rank_predictions(chunk, probs, model.class_names, top_k)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.predict",
        description="Predict the classes of image files with a trained checkpoint. Prints one line per "
        "image: its path, then the predicted class and its probability (the K best with --top-k).",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .ckpt file written by training")
    parser.add_argument(
        "paths",
        metavar="PATH",
        nargs="+",
        help="an image file (PNG, JPEG, BMP, WebP, TIFF, ...), a folder (its image files, sorted by name; "
        "sub-folders are not searched) or a quoted glob pattern such as 'photos/*.jpg' ('**' matches any "
        "depth); the order given is kept",
    )
    parser.add_argument(
        "--top-k", type=int, default=1, metavar="K", help="show the K best classes (default 1)"
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="also write the predictions to FILE: .csv (path,class1,prob1,...) or .json (a list)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="images per batch (default 64)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto (default): the GPU when there is one, else the CPU",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load a legacy CHECKPOINT of pickled Python objects (e.g. a whole model saved with "
        "torch.save(model)); unpickling runs code from the file, so only use it for files you trust",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m src.predict`: a user's mistake ends with one `error:` line, exit status 1."""
    args = build_parser().parse_args(argv)
    with exit_on_user_error():
        if args.output is not None:
            check_output(args.output)
        rows = predict_files(
            args.checkpoint, args.paths, args.top_k, args.device, args.batch_size, args.allow_pickle
        )
        print("\n".join(format_rows(rows)))
        if args.output is not None:
            path = write_predictions(rows, args.output)
            print(f"Wrote {len(rows)} predictions to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
