"""Export a trained checkpoint to ONNX: `python -m src.export CHECKPOINT --output model.onnx [--opset N]`.

A thin command over `src.onnx_export` (what the ONNX file holds is said there).
"""

from __future__ import annotations

import argparse

from src.commands import add_tta_argument, add_weights_only_argument
from src.errors import exit_on_user_error
from src.onnx_export import describe, export_onnx


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m src.export`: a user's mistake ends with one `error:` line, exit status 1."""
    parser = argparse.ArgumentParser(
        prog="python -m src.export",
        description="Export a checkpoint to ONNX: raw images in [0, 1] in, class probabilities out.",
    )
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a .ckpt file written by `python -m src.cli fit`"
    )
    parser.add_argument("--output", "-o", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset version (default: the exporter's)"
    )
    add_tta_argument(parser)
    add_weights_only_argument(parser)
    args = parser.parse_args(argv)
    with exit_on_user_error():
        path = export_onnx(args.checkpoint, args.output, args.opset, args.weights_only, args.tta)
    print(describe(path))


if __name__ == "__main__":
    main()
