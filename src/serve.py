"""Serve a trained checkpoint over HTTP, with a web page to try it: `python -m src.serve CHECKPOINT`.

    python -m src.serve logs/quickstart/version_0/checkpoints/last.ckpt --port 8000
    curl -F file=@photo.png http://127.0.0.1:8000/predict

A thin command over `src.serving.server.build_server` (LitServe): `GET /` is the page, `POST /predict` takes
a multipart field `file` or JSON `{"image": "<base64>"}` and answers the top-k classes as JSON.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence

from src.commands import add_weights_only_argument
from src.errors import UserInputError, exit_on_user_error
from src.serving.server import build_server

#: The environment variable an API key may come from (so it stays out of the shell history).
API_KEY_VARIABLE = "SERVE_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.serve",
        description="Serve a trained checkpoint: a web page at / and a JSON prediction API at /predict.",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .ckpt file written by training")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "0.0.0.0", "::"],
        help="127.0.0.1 (default): this machine only; 0.0.0.0 or ::: every network interface",
    )
    parser.add_argument("--port", type=int, default=8000, help="1024 to 65535 (default 8000)")
    parser.add_argument("--top-k", type=int, default=3, metavar="K", help="classes per answer (default 3)")
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto (default): the GPUs when there are some, else the CPU",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=8,
        metavar="N",
        help="predict up to N concurrent requests as one batch (default 8; 1: no batching)",
    )
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=0.02,
        metavar="S",
        help="seconds a batch waits for more requests (default 0.02)",
    )
    parser.add_argument(
        "--workers-per-device", type=int, default=1, metavar="N", help="inference processes per device"
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=10.0, metavar="MB", help="largest request (default 10 MB)"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=40_000_000,
        metavar="N",
        help="largest image in pixels, checked before decoding (default 40 million)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_VARIABLE),
        metavar="KEY",
        help=f"require KEY on /predict (header 'X-API-Key: KEY'); default: ${API_KEY_VARIABLE} if set",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="server log level"
    )
    add_weights_only_argument(parser)
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Each numeric option in its range, else a `UserInputError` naming it."""
    limits = {
        "--port": (args.port, 1024, 65535),
        "--top-k": (args.top_k, 1, None),
        "--max-batch-size": (args.max_batch_size, 1, None),
        "--batch-timeout": (args.batch_timeout, 0, None),
        "--workers-per-device": (args.workers_per_device, 1, None),
        "--max-upload-mb": (args.max_upload_mb, 0.001, None),
        "--max-pixels": (args.max_pixels, 1, None),
    }
    for key, (value, low, high) in limits.items():
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise UserInputError(f"{key}: must be {bound}, got {value}")
    if args.api_key is not None and not args.api_key:
        raise UserInputError(f"--api-key: empty (unset {API_KEY_VARIABLE} or give a key)")


def check_port(host: str, port: int) -> None:
    """A `UserInputError` naming `--port` when another program already listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserInputError(f"--port: cannot listen on {host}:{port} ({err.strerror})") from err


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m src.serve`: a user's mistake ends with one `error:` line, exit status 1."""
    args = build_parser().parse_args(argv)
    with exit_on_user_error():
        check_arguments(args)
        check_port(args.host, args.port)
        server = build_server(
            args.checkpoint,
            top_k=args.top_k,
            device=args.device,
            max_batch_size=args.max_batch_size,
            batch_timeout=args.batch_timeout,
            workers_per_device=args.workers_per_device,
            max_upload_mb=args.max_upload_mb,
            max_pixels=args.max_pixels,
            api_key=args.api_key,
            weights_only=args.weights_only,
        )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Serving {args.checkpoint} at http://{host}:{args.port}/ (API: POST /predict)", flush=True)
    server.run(host=args.host, port=args.port, log_level=args.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
