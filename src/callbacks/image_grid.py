"""Log a grid of training images to TensorBoard, as the classic tutorials do with `add_image`."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid


class SampleImageGrid(Callback):
    """Log one grid of the first training batch (after transforms) once per run, as `train/samples`.

    Each image is rescaled to [0, 1] for display, so normalised inputs show as they look to the model.

    Args:
        num_images: Images in the grid (at most the batch size).
        nrow: Images per row.
    """

    def __init__(self, num_images: int = 32, nrow: int = 8) -> None:
        self.num_images = num_images
        self.nrow = nrow
        self._logged = False

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int
    ) -> None:
        if self._logged:
            return
        self._logged = True
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or not trainer.is_global_zero:
            return
        images = batch[0][: self.num_images].detach().float().cpu()
        grid = make_grid(images, nrow=self.nrow, normalize=True, scale_each=True)
        for logger in loggers:
            logger.experiment.add_image("train/samples", grid, global_step=trainer.global_step)
