"""What does each part of the training recipe do here? One config trained once per variant, same seed and
epochs: the baseline (every recipe part off), the baseline plus one part, and every part together.

    python -m benchmarks.ablation --data-dir data                  # every variant (minutes each on a CPU)
    python -m benchmarks.ablation --data-dir data --quick          # a smoke run (a few batches each)
    python -m benchmarks.ablation --data-dir data --variants baseline,ema

Each run is `python -m src.cli fit` in this process; after every epoch the test accuracy is measured with
the clock paused (the EMA weights when the variant keeps an EMA, as its checkpoints do). The table gives
the final test accuracy, its change against the baseline, and the seconds of the fit loop.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

from benchmarks.speed import cli_args, machine, quiet
from benchmarks.timers import TimeToAccuracy
from src.errors import exit_on_user_error
from src.lightning_cli import cli_main

#: Every recipe part off: the config's network, optimiser, schedule, data and epochs.
BASELINE = [
    "--model.label_smoothing=0.0",
    "--data.augment_policy=none",
    "--data.random_erasing=0.0",
    "--data.mixup_alpha=0.0",
    "--data.cutmix_alpha=0.0",
]
EMA = ["--trainer.callbacks+=src.callbacks.EMA", "--trainer.callbacks.decay=0.998"]
COSINE = [
    "--model.scheduler=src.models.schedules.CosineAnnealingLR",
    "--model.warmup_epochs=1",
]
#: Each variant: the overrides it adds to the baseline.
VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "label smoothing 0.1": ["--model.label_smoothing=0.1"],
    "mixup 0.2 / cutmix 1.0": ["--data.mixup_alpha=0.2", "--data.cutmix_alpha=1.0"],
    "EMA (decay 0.998)": EMA,
    "TrivialAugment": ["--data.augment_policy=trivialaugment"],
    "random erasing 0.25": ["--data.random_erasing=0.25"],
    "warm-up 1 epoch + cosine": COSINE,
    "all of the above": [
        "--model.label_smoothing=0.1",
        "--data.mixup_alpha=0.2",
        "--data.cutmix_alpha=1.0",
        *EMA,
        "--data.augment_policy=trivialaugment",
        "--data.random_erasing=0.25",
        *COSINE,
    ],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    description = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=description)
    parser.add_argument(
        "--config", action="append", help="the config (default configs/fashion_mnist_fast.yaml); repeatable"
    )
    parser.add_argument("--data-dir", default="data", help="folder with FashionMNIST/raw/")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the config's)")
    parser.add_argument("--variants", help="comma-separated variants to run (a unique prefix of each name)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 epochs of 3 batches")
    args = parser.parse_args(argv)
    args.config = args.config or ["configs/fashion_mnist_fast.yaml"]
    args.set = []
    return args


def chosen(args: argparse.Namespace) -> list[str]:
    if not args.variants:
        return list(VARIANTS)
    names = []
    for prefix in args.variants.split(","):
        matches = [name for name in VARIANTS if name.lower().startswith(prefix.strip().lower())]
        if len(matches) != 1:
            raise SystemExit(f"error: --variants: {prefix!r} matches {matches or 'none'} of {list(VARIANTS)}")
        names += matches
    return names


def run(args: argparse.Namespace, out_dir: Path, overrides: list[str]) -> TimeToAccuracy:
    """Fit the config with `overrides`; the timer holding each epoch's test accuracy."""
    extra = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2"]
    epochs = [f"--trainer.max_epochs={args.epochs}"] if args.epochs else []
    with contextlib.redirect_stdout(io.StringIO()):
        cli = cli_main(
            [
                "fit",
                *cli_args(args, out_dir),
                *BASELINE,
                *overrides,
                *epochs,
                "--trainer.callbacks+=benchmarks.timers.TimeToAccuracy",
                "--trainer.callbacks.target=1.01",  # never stop early
                "--test_after_fit=false",
                *(extra if args.quick else []),
            ]
        )
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, TimeToAccuracy))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    print("Machine")
    for line in machine():
        print(f"  {line}")
    print(f"Config: {' + '.join(args.config)}  data: {args.data_dir}  device: {args.device}")
    print(f"\n{'variant':<28} {'test acc':>9} {'change':>8} {'fit s':>8}   test acc per epoch")
    baseline = None
    with tempfile.TemporaryDirectory() as tmp, exit_on_user_error():
        for index, name in enumerate(chosen(args)):
            timer = run(args, Path(tmp) / str(index), VARIANTS[name])
            accuracy, seconds = timer.history[-1][3], timer.history[-1][1]
            baseline = accuracy if name == "baseline" else baseline
            change = f"{(accuracy - baseline) * 100:+.2f}" if baseline is not None else "-"
            epochs = " ".join(f"{h[3]:.4f}" for h in timer.history)
            print(f"{name:<28} {accuracy:>9.4f} {change:>8} {seconds:>8.1f}   {epochs}", flush=True)


if __name__ == "__main__":
    main()
