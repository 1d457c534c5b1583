"""Predict the classes of image files with a trained checkpoint: `python -m src.predict CKPT PATH [PATH ...]`.

    python -m src.predict logs/quickstart/version_0/checkpoints/last.ckpt photo.png 'shoes/*.jpg' --top-k 3

A thin command over `src.predictions` (from Python: `predict_files(checkpoint, paths, top_k=1)`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from src.commands import add_tta_argument, add_weights_only_argument
from src.errors import exit_on_user_error
from src.predictions import check_output, format_rows, predict_files, write_predictions


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
    add_tta_argument(parser)
    add_weights_only_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m src.predict`: a user's mistake ends with one `error:` line, exit status 1."""
    args = build_parser().parse_args(argv)
    with exit_on_user_error():
        if args.output is not None:
            check_output(args.output)
        rows = predict_files(
            args.checkpoint, args.paths, args.top_k, args.device, args.batch_size, args.weights_only, args.tta
        )
        print("\n".join(format_rows(rows)))
        if args.output is not None:
            path = write_predictions(rows, args.output)
            print(f"Wrote {len(rows)} predictions to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
