"""Hyperparameter search with Optuna: `python -m src.sweep --config CONFIG --space SPACE --trials N`.

    python -m src.sweep --config configs/quickstart.yaml --space configs/sweeps/quickstart.yaml --trials 8 \\
      --trainer.max_epochs 3

Each trial is one `fit` of the config, in this process, with the trial's values as overrides; further
`--key value` arguments apply to every trial. A thin command over `src.sweeps`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from src.errors import UserInputError, exit_on_user_error
from src.sweeps.results import best_trial, write_best_config, write_plots, write_table
from src.sweeps.study import PRUNERS, SAMPLERS, Sweep


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.sweep",
        description="Search hyperparameters with Optuna; each trial is one `fit` of --config. Arguments "
        "not listed here (e.g. --trainer.max_epochs 3) are passed to every trial.",
    )
    parser.add_argument("--config", required=True, help="the config each trial trains")
    parser.add_argument("--space", required=True, help="the search space: a YAML file of config keys")
    parser.add_argument("--trials", type=int, required=True, help="trials in the study, all workers together")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUTPUT/study.db)")
    parser.add_argument("--study", help="the study's name (default: the config's name)")
    parser.add_argument("--output", help="folder for the results (default: sweeps/<study>)")
    parser.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="tpe", help="default: tpe")
    parser.add_argument("--pruner", choices=sorted(PRUNERS), default="median", help="default: median")
    parser.add_argument("--monitor", default="val/acc", help="the metric to optimise (default: val/acc)")
    parser.add_argument("--direction", choices=["maximize", "minimize"], default="maximize")
    parser.add_argument("--seed", type=int, help="the sampler's seed (default: none)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m src.sweep`: a user's mistake ends with one `error:` line, exit status 1."""
    args, trial_args = build_parser().parse_known_args(argv)
    with exit_on_user_error():
        if args.trials < 1:
            raise UserInputError(f"--trials: must be at least 1, got {args.trials}")
        if not Path(args.config).is_file():
            raise UserInputError(f"--config: {args.config} not found")
        study_name = args.study or Path(args.config).stem
        output = Path(args.output or Path("sweeps") / study_name)
        sweep = Sweep(
            args.config,
            args.space,
            output,
            trial_args,
            args.storage,
            study_name,
            args.sampler,
            args.pruner,
            args.monitor,
            args.direction,
            args.seed,
        )
        study = sweep.run(args.trials, args.timeout)
        print("\n".join(write_table(study, output / "trials.csv")))
        best = best_trial(study)
        config = write_best_config(best, output / "best.yaml")
        written = write_plots(study, output)
        print(f"Best trial: {best.number}, {args.monitor} = {best.value:.4f}, {best.params}")
        print(f"Wrote {output / 'trials.csv'}, {config}, {', '.join(str(p) for p in written)}")
        print(f"Train it: python -m src.cli fit --config {config}")


if __name__ == "__main__":
    main()
