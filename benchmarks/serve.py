"""How fast does `python -m src.serve` answer, and does it stay correct and bounded under load?

    python -m benchmarks.serve --checkpoint logs/quickstart/version_0/checkpoints/last.ckpt
    python -m benchmarks.serve --checkpoint CKPT --quick        # 200 requests, 8 clients

For each server set-up (with batching, `--max-batch-size 8`, and without, `--max-batch-size 1`): starts the
server on 127.0.0.1, warms it up, then sends `--requests` uploads from `--clients` concurrent clients (each
with one keep-alive connection), one in `--bad-every` of them not an image. Prints the good requests'
throughput and p50/p95/p99 latency, the ratio of served images/s to in-process `predict_files` images/s on
the same images, and the server's memory (all its processes) after the warm-up and after the run. Every
good answer is checked against `predict_files` (classes and probabilities), every bad one for its 400;
any mismatch ends the run with an error. Traffic goes to 127.0.0.1 only, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from src.errors import UserInputError, exit_on_user_error
from src.models.classifier import ImageClassifier
from src.predictions import predict_with, resolve_device
from src.serving.client import post_image
from src.serving.process import ServerProcess

#: A file the server must refuse with 400.
NOT_AN_IMAGE = b"%PDF-1.4 this is not an image"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default="logs/quickstart/version_0/checkpoints/last.ckpt", help="the .ckpt to serve"
    )
    parser.add_argument("--images", type=int, default=64, help="distinct test images (default 64)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per set-up (default 1000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--bad-every", type=int, default=10, help="one bad request in N (0: none)")
    parser.add_argument("--batch-timeout", type=float, default=0.02, help="the servers' --batch-timeout")
    parser.add_argument("--batch-sizes", default="8,1", help="the --max-batch-size of each set-up")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--quick", action="store_true", help="200 requests from 8 clients")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.clients = 200, 8
    return args


def load_model(checkpoint: str, device: str) -> ImageClassifier:
    """The checkpoint's model on `device`, or a `UserInputError` saying how to get a checkpoint."""
    if not Path(checkpoint).is_file():
        raise UserInputError(
            f"--checkpoint: {checkpoint} not found (train one first: python -m src.cli fit --config "
            "configs/quickstart.yaml)"
        )
    return ImageClassifier.from_checkpoint(checkpoint, resolve_device(device))


def make_images(model: ImageClassifier, count: int, folder: Path) -> list[Path]:
    """`count` PNG files of the model's input size and channels, each a different smooth pattern."""
    hparams = model.hparams
    height, width = hparams["image_size"]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        pattern = np.sin(x * rng.uniform(2, 12) + y * rng.uniform(2, 12) + rng.uniform(0, 6))
        pixels = ((pattern + 1) * 127.5).astype(np.uint8)
        image = Image.fromarray(pixels if hparams["in_channels"] == 1 else np.stack([pixels] * 3, -1))
        paths.append(folder / f"{i:04d}.png")
        image.save(paths[-1])
    return paths


def in_process_rate(
    model: ImageClassifier, requests: int, paths: list[Path]
) -> tuple[float, dict[str, dict]]:
    """Images/s of `predict_files` with the model already loaded, as the server has it (`predict_with`,
    batches of 64) on `requests` images; and its answer per image."""
    predict_with(model, paths[:8], top_k=3, batch_size=64)  # warm-up
    files = [paths[i % len(paths)] for i in range(requests)]
    start = time.perf_counter()
    rows = predict_with(model, files, top_k=3, batch_size=64)
    seconds = time.perf_counter() - start
    return len(files) / seconds, {row["path"]: row for row in rows[: len(paths)]}


def load(server: ServerProcess, args: argparse.Namespace, paths: list[Path], expected: dict) -> dict:
    """Send the requests; the good ones' latencies and the run's wall time. Raises on a wrong answer."""
    data = {str(p): p.read_bytes() for p in paths}
    jobs = [
        ("bad.pdf", NOT_AN_IMAGE)
        if args.bad_every and i % args.bad_every == args.bad_every - 1
        else (str(paths[i % len(paths)]), data[str(paths[i % len(paths)])])
        for i in range(args.requests)
    ]
    per_client = [jobs[c :: args.clients] for c in range(args.clients)]

    def client(work: list[tuple[str, bytes]]) -> list[float]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        latencies = []
        for name, body in work:
            start = time.perf_counter()
            status, answer = post_image(server.url, body, Path(name).name, connection=connection)
            elapsed = time.perf_counter() - start
            if name == "bad.pdf":
                if status != 400 or "not an image format" not in answer.get("detail", ""):
                    raise RuntimeError(f"a bad request got {status} {answer}")
                continue
            want = expected[name]
            got = answer.get("predictions", [])
            if (
                status != 200
                or [p["class"] for p in got] != want["classes"]
                or not np.allclose([p["probability"] for p in got], want["probs"], atol=1e-5)
            ):
                raise RuntimeError(f"{name}: got {status} {answer}, expected {want}")
            latencies.append(elapsed)
        connection.close()
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        latencies = [t for part in pool.map(client, per_client) for t in part]
    return {"seconds": time.perf_counter() - start, "latencies": sorted(latencies)}


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with exit_on_user_error(), tempfile.TemporaryDirectory() as folder:
        model = load_model(args.checkpoint, args.device)
        paths = make_images(model, args.images, Path(folder))
        rate, expected = in_process_rate(model, args.requests, paths)
        bad = f"1 in {args.bad_every} bad" if args.bad_every else "no bad requests"
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
        print(
            f"Machine: {machine}; device {args.device}; {args.requests} requests, "
            f"{args.clients} clients, {bad}"
        )
        print(f"In-process predict_files (model loaded): {rate:,.0f} images/s (batches of 64)\n")
        header = (
            f"{'max batch':>9} {'images/s':>9} {'ratio':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
            f"{'MB warm':>8} {'MB after':>8} {'change':>7}"
        )
        print(header)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            options = [args.checkpoint, "--device", args.device, "--max-batch-size", str(batch)]
            options += ["--batch-timeout", str(args.batch_timeout)]
            options += ["--top-k", "3", "--log-level", "warning"]
            with ServerProcess(options, log=Path(folder) / f"server{batch}.log") as server:
                warm = argparse.Namespace(**{**vars(args), "requests": 100, "bad_every": 10})
                load(server, warm, paths, expected)
                before = server.memory_mb()
                result = load(server, args, paths, expected)
                after = server.memory_mb()
            served = len(result["latencies"]) / result["seconds"]
            p50, p95, p99 = (1000 * percentile(result["latencies"], q) for q in (50, 95, 99))
            print(
                f"{batch:>9} {served:>9,.0f} {served / rate:>6.2f} {p50:>7.1f} {p95:>7.1f} {p99:>7.1f} "
                f"{before:>8,.0f} {after:>8,.0f} {100 * (after - before) / before:>+6.1f}%",
                flush=True,
            )
        print("\nEvery good answer matched predict_files; every bad request got its 400.")


if __name__ == "__main__":
    main()
