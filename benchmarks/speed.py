"""How fast is the template? Three measurements on one config, printed as a table with the machine.

    python -m benchmarks.speed --data-dir data            # the full run (several minutes on a CPU)
    python -m benchmarks.speed --data-dir data --quick    # a smoke run of every part (about a minute)

(a) Seconds per training epoch of `python -m src.cli fit` (run in this process through `cli_main`, timed
    from the first to the last batch of each epoch by a callback: start-up, validation, checkpoints and
    the test are not counted) against a plain PyTorch loop written the classic way, on the same network,
    optimiser, data (the same DataLoader and batch transforms), batch size and number of steps.
(b) Images per second of each data path (per-sample PIL transforms in worker processes; the in-memory
    uint8 path with batched transforms; pre-loaded float tensors in a `TensorDataset`) against the
    images per second the model trains at when data costs nothing.
(c) Seconds of training until the test accuracy reaches `--target`, with the config as it is (test
    accuracy measured after each epoch, clock paused).
(d) Images per second of the image-file path (`CSVImageDataModule`) on photos: `--photos` JPEGs of camera
    sizes made by `benchmarks.photos` (from scikit-learn's sample photos), resized to `--photo-size`:
    decoded by PIL in every epoch, by torchvision in every epoch (both in `num_workers` processes), and
    decoded once (`cache: memory`, batched transforms); then the cached path at FashionMNIST's size
    (28x28 grayscale) against FashionMNIST's in-memory path.

Each figure is the median of `--repeats` timings after one warm-up ((a) runs twice, alternating). When
the timings of a figure vary by more than `--noise` (coefficient of variation), the two rounds of (a)
disagree by more than that, or the load average exceeds the cores, the run warns that the machine is too
busy to trust the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import lightning
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.photos import make_photos
from benchmarks.timers import EpochTimer, TimeToAccuracy
from src.callbacks import EMA
from src.data import CSVImageDataModule, FashionMNISTDataModule
from src.data.augment import batch_mixer
from src.errors import exit_on_user_error
from src.lightning_cli import cli_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        action="append",
        help="the config to measure (default configs/fashion_mnist_fast.yaml); repeat it to add overlays",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a CLI override, e.g. --set=--model.tta=true",
    )
    parser.add_argument(
        "--data-dir", default="data", help="folder with FashionMNIST/raw/ (or to download to)"
    )
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed epoch in (a), (b)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure, after one warm-up")
    parser.add_argument("--target", type=float, default=0.93, help="test accuracy to reach in (c)")
    parser.add_argument("--seconds", type=float, default=120, help="the time goal of (c), in seconds of fit")
    parser.add_argument("--noise", type=float, default=0.05, help="warn above this coefficient of variation")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--parts", default="abc", help="which parts to run, e.g. `ab`, `d`")
    parser.add_argument("--photos", type=Path, default=Path("photos"), help="(d): the photos' folder (made)")
    parser.add_argument("--photo-count", type=int, default=2000, help="(d): photos to make and read")
    parser.add_argument("--photo-size", type=int, default=64, help="(d): the side they are resized to")
    parser.add_argument("--workers", type=int, default=2, help="(d): worker processes of the uncached paths")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 10 steps, 2 repeats, (c) shortened"
    )
    args = parser.parse_args(argv)
    args.config = args.config or ["configs/fashion_mnist_fast.yaml"]
    if args.quick:
        args.steps, args.repeats = min(args.steps, 10), min(args.repeats, 2)
    return args


# --- the machine ----------------------------------------------------------------------------------------


def machine() -> list[str]:
    """Lines describing where the figures come from."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        f"CPU: {cpu}, {cores} cores available, torch uses {torch.get_num_threads()} threads",
        f"GPU: {gpu}",
        f"python {platform.python_version()}, torch {torch.__version__}, lightning {lightning.__version__}",
    ]
    if hasattr(os, "getloadavg"):
        lines.append("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return lines


# --- timing helpers -------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_cv(values: list[float]) -> tuple[float, float]:
    """Median and coefficient of variation (std / mean) of repeated timings."""
    cv = statistics.pstdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0
    return statistics.median(values), cv


def first_batches(loader: Iterable, n: int):
    """The first `n` batches of `loader` (fewer if it is shorter)."""
    for step, batch in enumerate(loader):
        if step == n:
            return
        yield batch


# --- building the pieces from the config ----------------------------------------------------------------


def cli_args(args: argparse.Namespace, out_dir: Path) -> list[str]:
    """The config with the data folder, device and an output folder of its own; no progress bar."""
    return [
        *(arg for config in args.config for arg in ("--config", config)),
        *args.set,
        f"--data.data_dir={args.data_dir}",
        f"--trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "--trainer.devices=1",
        f"--trainer.default_root_dir={out_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


#: No learning-rate schedule in (a) and (b): every timed step then does the same work.
NO_SCHEDULE = ["--model.scheduler=null", "--model.warmup_epochs=0", "--model.warmup_steps=0"]


def build_cli(args: argparse.Namespace, out_dir: Path, *extra: str):
    """The CLI of the config (with `extra` overrides), not run; its training split set up."""
    cli = cli_main([*cli_args(args, out_dir), *NO_SCHEDULE, *extra], run=False)
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    return cli


def build(args: argparse.Namespace, out_dir: Path, *extra: str):
    """The model and datamodule of the config (with `extra` overrides), the training split set up."""
    cli = build_cli(args, out_dir, *extra)
    return cli.model, cli.datamodule


# --- (a) the template against a plain loop --------------------------------------------------------------


def plain_loop_epochs(args: argparse.Namespace, out_dir: Path) -> tuple[list[float], int]:
    """Seconds per epoch of `args.steps` steps of a hand-written loop (the first epoch is a warm-up), and
    the images of one such epoch.

    It does what the config asks the template to do, by hand: the batch transforms (augmentation,
    MixUp/CutMix), mixed precision, channels-last, `torch.compile`, label smoothing and the EMA update
    after each step.
    """
    torch.manual_seed(42)
    cli = build_cli(args, out_dir)
    module, datamodule = cli.model, cli.datamodule
    device = torch.device(args.device)
    model = module.backbone.to(device).train()  # the plain nn.Module network of the config
    channels_last = bool(module.hparams.channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = module.configure_optimizers()  # the config's optimiser and parameter groups
    if module.hparams.compile:  # as `ImageClassifier.configure_model` does in fit
        options = module.hparams.compile
        model.compile(**(options if isinstance(options, dict) else {}))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=module.hparams.label_smoothing)
    mixer = batch_mixer(datamodule.mixup_alpha, datamodule.cutmix_alpha, datamodule.num_classes)
    bf16 = "bf16" in str(cli.trainer.precision)
    ema = next((c for c in cli.trainer.callbacks if isinstance(c, EMA)), None)
    average = AveragedModel(model, avg_fn=ema.avg_fn) if ema is not None else None
    dataloader = datamodule.train_dataloader()
    seconds, images = [], 0
    for _ in range(args.repeats + 1):
        sync(device)
        start = time.perf_counter()
        images = 0
        for X, y in first_batches(dataloader, args.steps):
            images += len(X)
            X, y = X.to(device), y.to(device)
            if X.dtype == torch.uint8:  # the in-memory path: augment and normalise the batch on the device
                X = datamodule.transform_batch(X, train=True)
            if mixer is not None:
                X, y = mixer(X, y)
            if channels_last:
                X = X.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(X), y)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
        sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds[1:], images


def cli_fit_epochs(args: argparse.Namespace, out_dir: Path) -> list[float]:
    """Seconds per epoch of `args.steps` steps of `python -m src.cli fit` (the first epoch is a warm-up)."""
    with contextlib.redirect_stdout(io.StringIO()):  # the CLI's lines about checkpoints
        cli = cli_main(
            [
                "fit",
                *cli_args(args, out_dir),
                *NO_SCHEDULE,
                f"--trainer.max_epochs={args.repeats + 1}",
                f"--trainer.limit_train_batches={args.steps}",
                "--trainer.limit_val_batches=0",
                "--trainer.num_sanity_val_steps=0",
                "--trainer.callbacks+=benchmarks.timers.EpochTimer",
                "--test_after_fit=false",
            ]
        )
    timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, EpochTimer))
    return timer.seconds[1:]


# --- (b) data paths against the model -------------------------------------------------------------------

PRELOADED = "pre-loaded float tensors (TensorDataset)"
PHOTOS_28 = "28x28 gray photos, cache: memory + batched"
FASHION_28 = "FashionMNIST (28x28 gray), in memory + batched"
MODEL = "model training steps (data already on the device)"


def images_per_second(run_batches: Callable[[], int], repeats: int) -> list[float]:
    """Images/s of `run_batches` (which returns how many images it went through), after one warm-up."""
    rates = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        n = run_batches()
        rates.append(n / (time.perf_counter() - start))
    return rates[1:]


def loader_rates(loader: DataLoader, transform, args: argparse.Namespace, steps: int = 0) -> list[float]:
    """Images/s of reading `steps` (default `args.steps`) training batches and moving them to the device
    (and `transform`)."""
    device = torch.device(args.device)

    def run() -> int:
        n = 0
        for images, labels in first_batches(loader, steps or args.steps):
            images, labels = images.to(device), labels.to(device)
            if transform is not None:
                images = transform(images)
            n += len(images)
        sync(device)
        return n

    return images_per_second(run, args.repeats)


def data_path_rates(args: argparse.Namespace, out_dir: Path) -> dict[str, tuple[list[float], bool]]:
    """Images/s of each data path: {name: (rates, whether it is the config's default path)}."""
    module, fast = build(args, out_dir, "--data.in_memory=true")
    _, per_sample = build(args, out_dir, "--data.in_memory=false")
    default_is_fast = build(args, out_dir)[1].uses_tensors
    device = torch.device(args.device)

    # Pre-loaded tensors, the classic way: every training image normalised once, in a TensorDataset.
    full = fast.train_set
    images, labels = full.dataset.__getitems__(list(full.indices))
    preloaded = TensorDataset(fast.transform_batch(images, train=False), labels)
    preloaded_loader = DataLoader(preloaded, batch_size=fast.batch_size, shuffle=True)

    rates = {
        f"per-sample PIL transforms ({per_sample.num_workers} workers)": (
            loader_rates(per_sample.train_dataloader(), None, args),
            not default_is_fast,
        ),
        "in-memory uint8 + batched transforms": (
            loader_rates(fast.train_dataloader(), lambda x: fast.transform_batch(x, train=True), args),
            default_is_fast,
        ),
        PRELOADED: (loader_rates(preloaded_loader, None, args), False),
    }

    # The model alone: training steps on one batch already on the device.
    model = module.backbone.to(device).train()
    optimizer = module.configure_optimizers()
    loss_fn = nn.CrossEntropyLoss()
    X, y = (t.to(device) for t in preloaded[: fast.batch_size])

    def train_steps() -> int:
        for _ in range(args.steps):
            optimizer.zero_grad()
            loss_fn(model(X), y).backward()
            optimizer.step()
        sync(device)
        return args.steps * len(X)

    rates[MODEL] = (
        images_per_second(train_steps, args.repeats),
        False,
    )
    return rates


# --- (d) the image-file path on photos -----------------------------------------------------------------


def photo_rates(args: argparse.Namespace) -> dict[str, list[float]]:
    """Images/s of the image-file path on `--photos`, per decoder and cache, and FashionMNIST's for scale."""
    csv_file = make_photos(args.photos, args.photo_count)
    size, batch = args.photo_size, 128
    steps = min(args.steps, args.photo_count // batch - 1)
    common = {"batch_size": batch, "val_size": batch, "channels": 3, "image_size": (size, size)}
    common |= {"crop_padding": size // 8, "persistent_workers": True}
    rates: dict[str, list[float]] = {}
    for name, options in (
        (f"PIL every epoch ({args.workers} workers)", {"decoder": "pil", "cache": "none"}),
        (f"torchvision every epoch ({args.workers} workers)", {"decoder": "torchvision", "cache": "none"}),
        ("cache: memory + batched transforms", {"cache": "memory"}),
    ):
        dm = CSVImageDataModule(str(csv_file), num_workers=args.workers, **common, **options)  # type: ignore[arg-type]
        dm.setup("fit")
        transform = (lambda x, dm=dm: dm.transform_batch(x, train=True)) if dm.uses_tensors else None
        rates[f"{size}x{size} RGB photos, {name}"] = loader_rates(
            dm.train_dataloader(), transform, args, steps
        )
    small = common | {"channels": 1, "image_size": (28, 28), "crop_padding": 0, "num_workers": 0}
    photos = CSVImageDataModule(str(csv_file), cache="memory", **small)  # type: ignore[arg-type]
    photos.setup("fit")
    fashion = FashionMNISTDataModule(data_dir=args.data_dir, batch_size=batch, download=False)
    fashion.setup("fit")
    for name, dm in ((PHOTOS_28, photos), (FASHION_28, fashion)):
        rates[name] = loader_rates(
            dm.train_dataloader(), lambda x, dm=dm: dm.transform_batch(x, train=True), args, steps
        )
    return rates


# --- (c) time to accuracy -------------------------------------------------------------------------------


def time_to_accuracy(args: argparse.Namespace, out_dir: Path) -> TimeToAccuracy:
    extra = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=20", "--trainer.limit_val_batches=5"]
    with contextlib.redirect_stdout(io.StringIO()):  # the CLI's lines about checkpoints
        cli = cli_main(
            [
                "fit",
                *cli_args(args, out_dir),
                "--trainer.callbacks+=benchmarks.timers.TimeToAccuracy",
                f"--trainer.callbacks.target={args.target}",
                "--test_after_fit=false",
                *(extra if args.quick else []),
            ]
        )
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, TimeToAccuracy))


# --- the report -----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def quiet() -> None:
    """Keep the output to the table: no Lightning start-up lines, no warnings about the short runs."""
    sys.argv = sys.argv[:1]  # the CLI is given its arguments directly; it warns if sys.argv has others
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (
        ".*could not find the monitored key",
        ".*smaller than the logging interval",
        ".*LeafSpec",
    ):
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    noisy: list[str] = []

    def row(name: str, values: list[float], fmt: str) -> float:
        value, cv = median_cv(values)
        if cv > args.noise:
            noisy.append(f"{name} (CV {cv:.0%})")
        print(f"  {name:<52} {format(value, fmt):>10} {cv:>7.1%}")
        return value

    print("Machine")
    for line in machine():
        print(f"  {line}")
    configs = " + ".join([*args.config, *args.set])
    print(f"Config: {configs}  data: {args.data_dir}  device: {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        if "a" in args.parts:
            # Two rounds (plain, fit, plain, fit): a change of the machine's load between the two runs
            # shows as rounds that disagree.
            plain, fit, ratios = [], [], []
            for round_ in range(2):
                plain_round, images = plain_loop_epochs(args, out_dir / f"plain{round_}")
                fit_round = cli_fit_epochs(args, out_dir / f"fit{round_}")
                plain, fit = plain + plain_round, fit + fit_round
                ratios.append(statistics.median(fit_round) / statistics.median(plain_round))
            print(f"\n(a) Seconds per epoch of {args.steps} training steps (median of 2 x {args.repeats})")
            print(f"  {'':<52} {'s/epoch':>10} {'CV':>7}")
            plain_s = row("plain PyTorch loop", plain, ".3f")
            fit_s = row("python -m src.cli fit", fit, ".3f")
            ratio = fit_s / plain_s
            print(f"  {'ratio fit / plain (target <= 1.03)':<52} {ratio:>10.3f} {verdict(ratio <= 1.03):>7}")
            print(f"  {'ratio in round 1, round 2':<52} {ratios[0]:>10.3f} {ratios[1]:>7.3f}")
            for name, seconds in (("plain PyTorch loop", plain_s), ("python -m src.cli fit", fit_s)):
                print(f"  {name + ', images/s':<52} {images / seconds:>10.0f}")  # the same batches
            if args.device == "cuda":
                peak = torch.cuda.max_memory_allocated() / 2**30
                print(f"  {'peak GPU memory allocated (GiB)':<52} {peak:>10.2f}")
            if abs(ratios[0] - ratios[1]) > args.noise * ratio:
                noisy.append(f"fit / plain ratio (rounds {ratios[0]:.3f} and {ratios[1]:.3f})")
        if "b" in args.parts:
            rates = data_path_rates(args, out_dir / "data")
            print(f"\n(b) Images per second over {args.steps} batches (median of {args.repeats})")
            print(f"  {'':<52} {'images/s':>10} {'CV':>7}")
            values = {}
            for name, (path_rates, default) in rates.items():
                values[name] = row(name + (" [default]" if default else ""), path_rates, ".0f")
            default_name = next(name for name, (_, default) in rates.items() if default)
            ratio = values[default_name] / values[PRELOADED]
            label = "default path / pre-loaded tensors (target >= 1)"
            print(f"  {label:<52} {ratio:>10.2f} {verdict(ratio >= 1):>7}")
            model_rate = values[MODEL]
            print(
                f"  {'default path / model training (>= 1: data is no bottleneck)':<52} "
                f"{values[default_name] / model_rate:>10.2f}"
            )
        if "c" in args.parts:
            result = time_to_accuracy(args, out_dir / "accuracy")
            print(
                f"\n(c) Time to {args.target:.0%} test accuracy"
                + (" (--quick: 20 steps only)" if args.quick else "")
            )
            print(f"  {'epoch':>5} {'fit loop s':>11} {'training s':>11} {'test acc':>9}")
            for epoch, seconds, train_seconds, accuracy in result.history:
                print(f"  {epoch:>5} {seconds:>11.1f} {train_seconds:>11.1f} {accuracy:>9.4f}")
            reached = [h for h in result.history if h[3] >= args.target]
            if reached:
                epoch, seconds, train_seconds, _ = reached[0]
                print(
                    f"  reached at epoch {epoch}: {seconds:.1f} s of fit loop, {train_seconds:.1f} s without "
                    f"validation (target <= {args.seconds:g} s: {verdict(seconds <= args.seconds)})"
                )
            else:
                print(f"  not reached in {len(result.history)} epochs (target: MISSED)")
        if "d" in args.parts:
            photo = photo_rates(args)
            what = f"{args.photo_count} photos (median of {args.repeats})"
            print(f"\n(d) Images per second of the image-file path, {what}")
            print(f"  {'':<52} {'images/s':>10} {'CV':>7}")
            values = {name: row(name, rates_, ".0f") for name, rates_ in photo.items()}
            names = list(values)
            speedup = values[names[1]] / values[names[0]]
            print(
                f"  {'torchvision / PIL (target >= 1.5)':<52} {speedup:>10.2f} {verdict(speedup >= 1.5):>7}"
            )
            cached = values[names[2]] / values[names[1]]
            print(f"  {'cached / torchvision every epoch':<52} {cached:>10.2f}")
            same_size = values[PHOTOS_28] / values[FASHION_28]
            label = "cached photos / FashionMNIST, 28x28 (target >= 0.9)"
            print(f"  {label:<52} {same_size:>10.2f} {verdict(same_size >= 0.9):>7}")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1) + 1:
        noisy.append(f"load average {os.getloadavg()[0]:.1f} with {os.cpu_count()} cores")
    if noisy:
        print(
            f"\nWARNING: the machine is too noisy to trust these figures; timings varied by more than "
            f"{args.noise:.0%} in: {', '.join(noisy)}. Run again on a quiet machine."
        )


if __name__ == "__main__":
    with exit_on_user_error():
        main()
