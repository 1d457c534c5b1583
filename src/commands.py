"""What the argument parsers of the commands (`src.predict`, `src.export`) share."""

from __future__ import annotations

import argparse


def add_weights_only_argument(parser: argparse.ArgumentParser) -> None:
    """`--no-weights-only`: also load a checkpoint of pickled Python objects (see `safe_load`)."""
    parser.add_argument(
        "--weights-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read CHECKPOINT as tensors and plain values only (default); --no-weights-only also loads a "
        "legacy file of pickled Python objects, which runs code from it: only for files you trust",
    )
