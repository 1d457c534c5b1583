"""How fast are the up-front checks of a large CSV list of images? Seconds and memory, as a table.

    python -m benchmarks.csv_scale --rows 1000000
    python -m benchmarks.csv_scale --rows 10000 1000000 --links hard symbolic --dir /tmp/csv_scale  # kept

The files are real: `--images` small PNGs, and for each CSV row its own file name, a hard link to one of
those PNGs (a million names cost directory entries, not disk space), `--per-folder` names a folder: a
user's CSV of a million images lists a million distinct files in many folders. With `--links symbolic`
the CSV lists symbolic links to those names instead (as a DVC checkout or a hand-made view of a dataset
does), each resolved by the checks. The labels are `--classes` class names. Each measurement runs in a
fresh Python process (the imports are done before the clock starts), which times it and reads its peak
resident memory (`VmHWM`, reset just before). The file system's cache is warm (the files were just
written or listed); the first run after a reboot would read the folders from disk.

Two measurements per size: `read_image_lists` alone (reading and checking the CSV), and the whole
`CSVImageDataModule(annotations_file=..., img_dir=...)` construction. Each is the best time of
`--repeats` runs, with the largest peak memory increase of those runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from src.data.csv_images import CSVImageDataModule
from src.data.csv_lists import read_image_lists

#: What can be measured: the name shown in the table for each.
MEASURED = {"read": "read_image_lists", "datamodule": "CSVImageDataModule"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.csv_scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="CSV sizes to measure")
    parser.add_argument("--images", type=int, default=20, help="distinct real PNG files (default 20)")
    parser.add_argument("--per-folder", type=int, default=1000, help="file names per folder (default 1000)")
    parser.add_argument("--classes", type=int, default=100, help="class names (default 100)")
    parser.add_argument(
        "--links",
        choices=("hard", "symbolic"),
        nargs="+",
        default=["hard"],
        help="what the CSV lists: hard links to the PNGs (plain files), or symbolic links to those",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument(
        "--dir",
        type=Path,
        help="write the files here and keep them (reused by a later run); default: a "
        "temporary folder, deleted at the end",
    )
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "CSV", "IMG_DIR"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_files(root: Path, rows: int, args: argparse.Namespace, links: str) -> tuple[Path, Path]:
    """Write `args.images` PNGs and a CSV of `rows` distinct names for them under `root/images`.

    `hard/<folder>/<i>.png` are hard links to the PNGs; with `links` "symbolic", the CSV lists
    `symbolic/<folder>/<i>.png` instead, symbolic links (absolute) to those hard links. Returns the CSV
    and the image folder; files already there are reused.
    """
    img_dir, csv = root / "images", root / f"{links}-{rows}.csv"
    if csv.is_file():
        return csv, img_dir
    (img_dir / "originals").mkdir(parents=True, exist_ok=True)
    sources = []
    for i in range(args.images):
        source = img_dir / "originals" / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 11 % 256, 80, 160)).save(source)
        sources.append(os.fspath(source))
    lines = ["path,label"]
    for start in range(0, rows, args.per_folder):
        folder = f"{start // args.per_folder:05d}"
        for kind in ("hard", links):
            os.makedirs(img_dir / kind / folder, exist_ok=True)
        for i in range(start, min(start + args.per_folder, rows)):
            name = f"{folder}/{i:07d}.png"
            hard = os.fspath(img_dir / "hard" / name)
            if not os.path.lexists(hard):
                os.link(sources[i % args.images], hard)
            if links == "symbolic" and not os.path.lexists(img_dir / links / name):
                os.symlink(hard, img_dir / links / name)
            lines.append(f"{links}/{name},class{i % args.classes}")
    csv.write_text("\n".join(lines) + "\n")
    return csv, img_dir


def peak_rss_mb() -> float:
    """The process's peak resident memory since the last `reset_peak_rss` (MB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover (not Linux)


def reset_peak_rss() -> None:
    """Make the peak resident memory the current one (Linux: write 5 to `/proc/self/clear_refs`)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def measure(what: str, csv: str, img_dir: str) -> dict[str, float]:
    """Seconds and peak memory increase (MB) of one measurement, in this process."""
    reset_peak_rss()
    before = peak_rss_mb()
    start = time.perf_counter()
    if what == "read":
        lists, _ = read_image_lists([csv], img_dir)
        n = len(lists[0].paths)
    else:
        n = len(
            CSVImageDataModule(annotations_file=csv, img_dir=img_dir).image_lists["annotations_file"].paths
        )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": peak_rss_mb() - before, "images": n}


def run_child(what: str, csv: Path, img_dir: Path) -> dict[str, float]:
    """`measure` in a fresh Python process."""
    command = [sys.executable, "-m", "benchmarks.csv_scale", "--child", what, str(csv), str(img_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: the measurement {what} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="csv_scale-"))
    print(f"files in {root}; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    table = []
    try:
        for rows, links in itertools.product(args.rows, args.links):
            start = time.perf_counter()
            csv, img_dir = make_files(root, rows, args, links)
            print(f"{rows} rows, {links} links: files ready in {time.perf_counter() - start:.1f} s")
            for what, name in MEASURED.items():
                runs = [run_child(what, csv, img_dir) for _ in range(args.repeats)]
                if any(run["images"] != rows for run in runs):
                    raise SystemExit(f"error: {name} kept {runs[0]['images']} of {rows} images")
                seconds = min(run["seconds"] for run in runs)
                peak = max(run["peak_mb"] for run in runs)
                table.append((name, links, rows, seconds, peak, rows / seconds))
    finally:
        if args.dir is None:
            shutil.rmtree(root)
    print(f"\n{'measured':<20} {'links':<9} {'rows':>9} {'seconds':>8} {'peak MB':>8} {'rows/s':>9}")
    for name, links, rows, seconds, peak, speed in table:
        print(f"{name:<20} {links:<9} {rows:>9} {seconds:>8.2f} {peak:>8.0f} {speed:>9.0f}")


if __name__ == "__main__":
    main()
