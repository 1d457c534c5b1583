"""A sweep: an Optuna study whose trials are in-process runs of the CLI's `fit` with overrides.

    from src.sweeps.study import Sweep
    Sweep("configs/quickstart.yaml", "configs/sweeps/quickstart.yaml", output="sweeps/quickstart").run(8)

The study lives in a database (SQLite file by default; any SQLAlchemy URL, e.g. PostgreSQL, for several
machines), so an interrupted sweep resumes and several processes may work on one study at once.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import optuna
from jsonargparse import ArgumentError
from lightning import Callback, LightningModule, Trainer
from optuna.storages import RDBStorage
from optuna.trial import Trial
from sqlalchemy.exc import SQLAlchemyError

from src.errors import UserInputError, describe_config_error, one_line
from src.lightning_cli import cli_main
from src.sweeps.space import edge_values, load_space

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}


class Pruning(Callback):
    """Report the monitored metric to the trial after each validation; stop the run when Optuna prunes it.

    Args:
        trial: The Optuna trial of this run.
        monitor: The metric reported (e.g. `val/acc`).
    """

    def __init__(self, trial: Trial, monitor: str) -> None:
        self.trial, self.monitor, self.pruned = trial, monitor, False
        self.values: list[float] = []

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.values.append(float(trainer.callback_metrics[self.monitor]))
        self.trial.report(self.values[-1], step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned = trainer.should_stop = True


def open_study(
    url: str,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    direction: Literal["maximize", "minimize"],
) -> optuna.Study:
    """Create the study in the storage at `url`, or load it when it exists. Workers starting together may
    race to create the database's tables or the study: the loser tries again. A trial whose worker died
    (no heartbeat for 2 minutes) is marked failed by the next worker."""
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
                storage = RDBStorage(url, heartbeat_interval=30, grace_period=120)
            return optuna.create_study(
                storage=storage,
                study_name=name,
                sampler=sampler,
                pruner=pruner,
                direction=direction,
                load_if_exists=True,
            )
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError) as err:
            if attempt == 4:
                reason = one_line(err)
                raise UserInputError(f"--storage: cannot open the study {name} at {url} ({reason})") from err
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


class Sweep:
    """A study over `space` on runs of `config`.

    Args:
        config: The config file each trial trains (`--config`).
        space: The search-space file (see `src.sweeps.space`).
        output: Folder for the trials' runs, the table, the best config and the plots.
        args: Further CLI arguments for every trial (e.g. `["--trainer.max_epochs", "3"]`).
        storage: Optuna storage URL (default: `sqlite:///<output>/study.db`).
        study: The study's name (default: the config's stem).
        sampler: `tpe` or `random`.
        pruner: `median`, `hyperband` or `none` (or an Optuna pruner).
        monitor: The metric to optimise, as logged (`val/acc`).
        direction: `maximize` or `minimize`.
        seed: The sampler's seed.
    """

    def __init__(
        self,
        config: str | Path,
        space: str | Path,
        output: str | Path,
        args: Sequence[str] = (),
        storage: str | None = None,
        study: str | None = None,
        sampler: str = "tpe",
        pruner: str | optuna.pruners.BasePruner = "median",
        monitor: str = "val/acc",
        direction: Literal["maximize", "minimize"] = "maximize",
        seed: int | None = None,
    ) -> None:
        self.config, self.output, self.args = str(config), Path(output), [str(a) for a in args]
        self.parameters = load_space(space)
        self.monitor, self.direction = monitor, direction
        self.output.mkdir(parents=True, exist_ok=True)
        url = storage or f"sqlite:///{self.output / 'study.db'}"
        self.study = open_study(
            url,
            study or Path(self.config).stem,
            SAMPLERS[sampler](seed=seed),
            PRUNERS[pruner]() if isinstance(pruner, str) else pruner,
            direction,
        )

    def cli_args(self, values: dict[str, Any], root: Path) -> list[str]:
        """The CLI arguments of a run with `values` (by key) writing into `root`."""
        overrides = [p.override(values[p.key]) for p in self.parameters]
        return ["--config", self.config, *self.args, *overrides, f"--trainer.default_root_dir={root}"]

    def check(self) -> None:
        """Parse the config with every key of the space (each choice, each end of each range) before any
        trial runs: an unknown key or a value the config refuses is a `UserInputError` naming it."""
        values = {p.key: edge_values(p.distribution)[0] for p in self.parameters}
        root = self.output / "check"
        try:
            cli = cli_main(self.cli_args(values, root), run=False, exit_on_error=False)
            for p in self.parameters:
                for value in edge_values(p.distribution)[1:]:
                    cli.parser.parse_args(self.cli_args({**values, p.key: value}, root))
        except ArgumentError as err:
            raise UserInputError(f"--space: {describe_config_error(str(err))}") from None
        except (ValueError, TypeError) as err:  # a class refusing a value while being built
            reason = describe_config_error(str(err).split("Errors:")[-1].strip().lstrip("- "))
            raise UserInputError(f"--space: the config cannot be built with {values}: {reason}") from None

    def objective(self, trial: Trial) -> float:
        """One trial: `fit` with the trial's values; the best `monitor` of the run."""
        values = {p.key: p.suggest(trial) for p in self.parameters}
        root = self.output / f"trial_{trial.number:03d}"
        cli = cli_main(self.cli_args(values, root), run=False, exit_on_error=False)
        pruning = Pruning(trial, self.monitor)
        cli.trainer.callbacks.append(pruning)  # type: ignore[attr-defined]
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        trial.set_user_attr("log_dir", str(cli.trainer.log_dir or root))
        if pruning.pruned:
            raise optuna.TrialPruned()
        if not pruning.values:
            raise RuntimeError(f"the run logged no {self.monitor}")
        return max(pruning.values) if self.direction == "maximize" else min(pruning.values)

    def run(self, trials: int, timeout: float | None = None) -> optuna.Study:
        """Run trials until the study has `trials` in all (those of earlier runs and other workers included)
        or `timeout` seconds have passed; a failing trial is recorded as failed and the sweep goes on."""
        self.check()
        start = time.monotonic()
        while len(self.study.get_trials(deepcopy=False)) < trials:
            if timeout is not None and time.monotonic() - start > timeout:
                break
            self.study.optimize(self.objective, n_trials=1, catch=(Exception,))
        return self.study
