"""What the argument parsers of the commands (`src.predict`, `src.export`) share."""

from __future__ import annotations

import argparse


def add_tta_argument(parser: argparse.ArgumentParser) -> None:
    """`--tta` / `--no-tta`: average each image's probabilities with its mirror image's, or not (default:
    the checkpoint's `model.tta`)."""
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation: average the probabilities of each image and its left-right mirror "
        "image (default: as the checkpoint's model.tta, off unless trained with it)",
    )


def add_weights_only_argument(parser: argparse.ArgumentParser) -> None:
    """`--no-weights-only`: also load a checkpoint of pickled Python objects (see `safe_load`)."""
    parser.add_argument(
        "--weights-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read CHECKPOINT as tensors and plain values only (default); --no-weights-only also loads a "
        "legacy file of pickled Python objects, which runs code from it: only for files you trust",
    )
