"""Find a base learning rate for a config: `python -m src.lr_find --config CONFIG [--key value ...]`.

    python -m src.lr_find --config configs/quickstart.yaml --write-config lr.yaml
    python -m src.cli fit --config configs/quickstart.yaml --config lr.yaml

Trains `--num-steps` steps with the base learning rate rising from `--min-lr` to `--max-lr` (each parameter
group at its `lr_scale` of it), then prints the suggested base rate and each group's rate, and saves the
loss curve. A thin command over `src.lr_finder`; the run leaves no checkpoint or log behind.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.cli import SaveConfigCallback

from src.errors import UserInputError, exit_on_user_error
from src.files import check_output_file
from src.lightning_cli import cli_main
from src.lr_finder import LRRangeTest, write_lr_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.lr_find",
        description="Learning-rate range test of a config. Arguments not listed here (e.g. "
        "--data.batch_size 128) apply to the run, as they would to `python -m src.cli fit`.",
    )
    parser.add_argument("--config", action="append", required=True, help="config file(s), as for src.cli")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="first base learning rate (default 1e-6)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="last base learning rate (default 1)")
    parser.add_argument("--num-steps", type=int, default=100, help="training steps (default 100)")
    parser.add_argument(
        "--plot", default="lr_find.png", help="where to save the loss curve (default lr_find.png)"
    )
    parser.add_argument(
        "--write-config", metavar="FILE", help="also write an overlay config with the suggestion"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m src.lr_find`: a user's mistake ends with one `error:` line, exit status 1."""
    args, overrides = build_parser().parse_known_args(argv)
    with exit_on_user_error():
        if not 0 < args.min_lr < args.max_lr:
            raise UserInputError(
                f"--min-lr, --max-lr: need 0 < min < max, got {args.min_lr} and {args.max_lr}"
            )
        if args.num_steps < 20:
            raise UserInputError(f"--num-steps: at least 20 are needed, got {args.num_steps}")
        plot = check_output_file(args.plot, (".png", ".pdf", ".svg"), "--plot")
        written = (
            check_output_file(args.write_config, (".yaml", ".yml"), "--write-config")
            if args.write_config
            else None
        )
        run = [
            f"--trainer.max_steps={args.num_steps}",
            "--trainer.max_epochs=-1",
            "--trainer.limit_val_batches=0",
        ]
        # The range test sets the rates itself: no schedule or warm-up from the config.
        run += ["--model.scheduler=null", "--model.warmup_epochs=0", "--model.warmup_steps=0"]
        run += [
            "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_checkpointing=false",
            "--trainer.logger=false",
        ]
        configs = [a for path in args.config for a in ("--config", path)]
        cli = cli_main([*configs, *overrides, *run], run=False)
        finder = LRRangeTest(args.min_lr, args.max_lr, args.num_steps)
        # Lightning sets `Trainer.callbacks` without declaring it; the CLI's config file is left out too.
        callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, SaveConfigCallback)]  # type: ignore[attr-defined]
        cli.trainer.callbacks = [*callbacks, finder]  # type: ignore[attr-defined]
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        lr = finder.suggestion()
        sweep = f"{len(finder.losses)} steps, {args.min_lr:g} to {args.max_lr:g}"
        print(f"Suggested base learning rate: {lr:.3g} ({sweep})")
        for name, rate in finder.group_rates(lr).items():
            print(f"  {name}: {'its fixed lr' if rate is None else f'{rate:.3g}'}")
        print(f"Wrote {finder.plot(Path(plot), lr)}")
        if written is not None:
            write_lr_config(Path(written), lr)
            print(f"Wrote {written}: train with --config {' --config '.join(args.config)} --config {written}")


if __name__ == "__main__":
    main()
