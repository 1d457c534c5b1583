"""A per-epoch summary of the run in `summary.csv`, next to its logs (what timm writes as `summary.csv`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from src.files import replace_when_done


class EpochSummaryCSV(Callback):
    """Writes `summary.csv` in the run's log folder (`trainer.log_dir`), one row per training epoch.

    Columns: `epoch`, `step`, every epoch-level metric logged so far (`train/loss`, `train/acc`,
    `val/loss`, `val/acc`, `val/acc_top5`, ...; step-level values are left out), and `lr-<group>`, each
    parameter group's learning rate at the end of the epoch. The file is rewritten whole after each epoch,
    so a metric that appears later (a first validation after some epochs) gets its column; a resumed run
    keeps the rows of the run it resumes (they are saved in its checkpoints). A `test` (the one after
    `fit` too) adds a last row with `epoch` = `test` and its metrics (`test/acc`, `test/acc_macro`,
    `test/f1_<class>`, ...). Not `metrics.csv`: that is the per-step file of Lightning's `CSVLogger`
    (`configs/logger/csv.yaml`) in the same folder.

    Args:
        filename: The file's name in the log folder.
    """

    def __init__(self, filename: str = "summary.csv") -> None:
        self.filename = filename
        self.rows: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Lightning
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.endswith("_step") or name.startswith("lr-") or getattr(value, "numel", lambda: 1)() != 1:
                continue
            row[name.removesuffix("_epoch")] = float(value)
        for optimizer in trainer.optimizers:
            for index, group in enumerate(optimizer.param_groups):
                row[f"lr-{group.get('name', index)}"] = group["lr"]
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        log_dir = trainer.log_dir  # on every process: it is broadcast from process 0
        if trainer.is_global_zero and log_dir is not None:
            self.write(Path(log_dir) / self.filename, self.rows)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Lightning
            return
        row: dict[str, Any] = {"epoch": "test", "step": trainer.global_step}
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith("test/") and getattr(value, "numel", lambda: 1)() == 1:
                row[name] = float(value)
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or log_dir is None:
            return
        # The epochs from the file: testing a checkpoint restored this callback's rows to that checkpoint's.
        path = Path(log_dir) / self.filename
        rows: list[dict[str, Any]] = []
        if path.is_file():
            with path.open(newline="") as file:
                rows = list(csv.DictReader(file))
        self.write(path, [r for r in rows if r["epoch"] != "test"] + [row])

    def write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        """Write `rows` to `path` (columns in order of first appearance)."""
        columns = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        with replace_when_done(path, self.filename) as temporary:
            temporary.write_text(text.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
