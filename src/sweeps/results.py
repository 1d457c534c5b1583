"""What a sweep leaves: a table of its trials (printed and CSV), the best trial's config, and plots."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import cast

import matplotlib.pyplot as plt
import optuna
import yaml
from matplotlib.figure import Figure
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as plots

from src.errors import UserInputError
from src.files import replace_when_done


def trial_rows(study: optuna.Study) -> list[dict]:
    """One dict per trial: number, state, value, seconds, then each parameter by key."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        row = {"number": trial.number, "state": trial.state.name, "value": trial.value, "seconds": seconds}
        rows.append(row | trial.params)
    return rows


def write_table(study: optuna.Study, path: Path) -> list[str]:
    """Write the trials as CSV to `path`; return the same table as lines for the terminal."""
    rows = trial_rows(study)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with replace_when_done(path, "trials table") as temporary, temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    short = {c: c.rsplit(".", 1)[-1] for c in columns}  # the last part of a config key
    text = [[short[c] for c in columns]] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in text) for i in range(len(columns))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in text]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0")
    return str(value)


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best completed trial, or a `UserInputError` when none completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise UserInputError(f"study {study.study_name}: no trial completed (see the table for their states)")
    return study.best_trial


def write_best_config(trial: FrozenTrial, path: Path) -> Path:
    """The best trial's whole config (the `config.yaml` its run saved), made to run anywhere as
    `python -m src.cli fit --config <path>`: without the trial's output folder and its logger in it."""
    saved = Path(trial.user_attrs["log_dir"]) / "config.yaml"
    config = yaml.safe_load(saved.read_text())
    trainer = config.get("trainer") or {}
    trainer.pop("default_root_dir", None)
    logger = trainer.get("logger")
    if isinstance(logger, dict) and logger.get("class_path", "").endswith("TensorBoardLogger"):
        trainer.pop("logger")  # the default logger, pointing into the trial's folder
    header = f"# The best trial ({trial.number}) of a sweep: {trial.value} with {trial.params}\n"
    with replace_when_done(path, "best config") as temporary:
        temporary.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def write_plots(study: optuna.Study, output: Path) -> list[Path]:
    """The optimisation history and, with 2 or more completed trials, the parameters' importances."""
    written = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figures = [("history.png", lambda: plots.plot_optimization_history(study))]
    if len(complete) >= 2:
        evaluator = PedAnovaImportanceEvaluator()
        figures.append(("importances.png", lambda: plots.plot_param_importances(study, evaluator=evaluator)))
    for name, draw in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = draw()
        figure = cast(Figure, axes.figure)
        figure.set_size_inches(10, 5)
        figure.tight_layout()
        figure.savefig(output / name, dpi=100)
        plt.close(figure)
        written.append(output / name)
    return written
