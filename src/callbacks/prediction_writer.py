"""Write the predictions of `python -m src.cli predict` to a CSV (or JSON) file, as `src.predict` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import Dataset, Subset

from src.predictions import check_output, check_top_k, rank_predictions, write_predictions


class PredictionWriter(BasePredictionWriter):
    """Writes one row per predicted image, in the format of `python -m src.predict --output`.

    CSV: `path,class1,prob1,...,classK,probK` (JSON for a `.json` output). `path` is the image file when
    the dataset has files (`data.predict_paths`, CSV and image-folder datasets), else the sample's index
    in the predicted split (e.g. the test split of FashionMNIST or CIFAR-10). Rows follow the dataset's
    order; the `batch_indices` Lightning records map each prediction back to its sample. With several
    processes (DDP) each writes its own share to `<output stem>.rank<N><suffix>`.

        python -m src.cli predict --config configs/quickstart.yaml --ckpt_path best \\
            --data.predict_paths '[photos/]' \\
            --trainer.callbacks+=src.callbacks.PredictionWriter --trainer.callbacks.output=preds.csv

    Args:
        output: The file to write: `.csv` or `.json`.
        top_k: How many classes to write per image, best first.
    """

    def __init__(self, output: str = "predictions.csv", top_k: int = 1) -> None:
        super().__init__(write_interval="epoch")
        self.output = check_output(output, key="PredictionWriter.output")
        self.top_k = top_k
        #: The file written by the last predict run.
        self.written: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Any,
        batch_indices: Any,
    ) -> None:
        # One dataloader: a list of batch outputs, and `batch_indices` still one list per dataloader.
        if trainer.predict_loop.num_dataloaders == 1:
            predictions, batch_indices = [predictions], batch_indices[:1]
        class_names = getattr(pl_module, "class_names", None)
        assert class_names is not None  # an `ImageClassifier` always has them
        top_k = check_top_k(self.top_k, len(class_names), key="PredictionWriter.top_k")
        loaders = trainer.predict_dataloaders
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        rows = []
        for loader, outputs, indices in zip(loaders, predictions, batch_indices, strict=True):
            names = sample_names(loader.dataset)
            flat = [i for batch in indices for i in batch]
            probs = torch.cat([out.detach().cpu() for out in outputs])
            order = sorted(range(len(flat)), key=flat.__getitem__)
            paths = [names[flat[j]] if names is not None else str(flat[j]) for j in order]
            rows += rank_predictions(paths, probs[order], class_names, top_k)
        output = self.output
        if trainer.world_size > 1:
            output = output.with_name(f"{output.stem}.rank{trainer.global_rank}{output.suffix}")
        self.written = write_predictions(rows, output, key="PredictionWriter.output")
        message = f"Wrote {len(rows)} predictions to {self.written}"
        bar = trainer.progress_bar_callback
        if bar is not None and getattr(bar, "is_enabled", False):  # TQDM and Rich bars have it
            bar.print(message)  # on its own line, not inside the progress bar's
        else:
            print(message)


def sample_names(dataset: Dataset) -> list[str] | None:
    """The file path of each sample of `dataset` when it has files, else None.

    Knows `paths` (`ImageFilesDataset`, `CSVImageDataset`), `samples` (torchvision's `ImageFolder`) and
    `Subset`s of those.
    """
    if isinstance(dataset, Subset):
        names = sample_names(dataset.dataset)
        return None if names is None else [names[i] for i in dataset.indices]
    paths = getattr(dataset, "paths", None)
    samples = getattr(dataset, "samples", None) if paths is None else None
    if samples is not None:
        paths = [sample[0] for sample in samples]
    return None if paths is None else [str(p) for p in paths]
