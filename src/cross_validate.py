"""k-fold cross-validation: `python -m src.cross_validate --folds K --config CONFIG [--key value ...]`.

    python -m src.cross_validate --folds 5 --config configs/csv_images.yaml \
        --data.annotations_file my_data/train.csv --data.img_dir my_data/images

Trains the config K times, with `--data.num_folds K --data.fold k` for k = 0 .. K-1 (each fold of the
training data is the validation set once, stratified by class for CSV and folder datasets), then prints
each fold's best validation score (`--monitor`, default `val/acc`) and test accuracy, their mean and
standard deviation, and writes them to `--output`. Each fold is an ordinary run with its own log folder.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from src.errors import UserInputError, exit_on_user_error
from src.files import check_output_file
from src.lightning_cli import cli_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.cross_validate",
        description="k-fold cross-validation of a config. Arguments not listed here (e.g. "
        "--data.batch_size 128, --monitor val/acc_macro) apply to every fold's run, as to `src.cli fit`.",
    )
    parser.add_argument("--folds", type=int, required=True, help="number of folds K (>= 2)")
    parser.add_argument("--config", action="append", required=True, help="config file(s), as for src.cli")
    parser.add_argument(
        "--output", default="cross_validation.csv", help="the per-fold table (default cross_validation.csv)"
    )
    return parser


def summary(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """The lines of the per-fold table, then the mean and standard deviation of each column.

    >>> print("\\n".join(summary([{"fold": 0, "val/acc": 0.5}, {"fold": 1, "val/acc": 0.7}], ["val/acc"])))
    fold  val/acc
    0      0.5000
    1      0.7000
    mean   0.6000
    std    0.1414
    """
    lines = [f"{'fold':<4}  " + "  ".join(f"{c:>7}" for c in columns)]
    for row in rows:
        lines.append(f"{row['fold']:<4}  " + "  ".join(f"{row[c]:>7.4f}" for c in columns))
    for name, stat in (("mean", statistics.mean), ("std", statistics.stdev)):
        values = [stat([row[c] for row in rows]) if len(rows) > 1 else float("nan") for c in columns]
        lines.append(f"{name:<4}  " + "  ".join(f"{v:>7.4f}" for v in values))
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m src.cross_validate`: a user's mistake ends with one `error:` line."""
    args, overrides = build_parser().parse_known_args(argv)
    with exit_on_user_error():
        if args.folds < 2:
            raise UserInputError(f"--folds: needs at least 2 folds, got {args.folds}")
        output = check_output_file(args.output, (".csv",), "--output")
        configs = [a for path in args.config for a in ("--config", path)]
        rows: list[dict[str, Any]] = []
        for fold in range(args.folds):
            print(f"Fold {fold} of {args.folds}")
            folds = [f"--data.num_folds={args.folds}", f"--data.fold={fold}"]
            cli = cli_main(["fit", *configs, *overrides, *folds])
            callback = cli.trainer.checkpoint_callback
            if not isinstance(callback, ModelCheckpoint) or callback.best_model_score is None:
                raise UserInputError("cross-validation needs checkpointing (no best validation score)")
            row: dict[str, Any] = {"fold": fold, str(callback.monitor): float(callback.best_model_score)}
            if "test/acc" in cli.trainer.callback_metrics:
                row["test/acc"] = float(cli.trainer.callback_metrics["test/acc"])
            rows.append({**row, "run": cli.trainer.log_dir or ""})
        columns = [c for c in rows[0] if c not in ("fold", "run")]
        print(f"Cross-validation over {args.folds} folds (best checkpoint of each):")
        print("\n".join(summary(rows, columns)))
        with Path(output).open("w", newline="") as file:
            writer = csv.DictWriter(file, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"Wrote {output}")


if __name__ == "__main__":
    main()
