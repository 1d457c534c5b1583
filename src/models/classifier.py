"""The image-classification system: a LightningModule that wraps any plain `nn.Module` network."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.errors import UserInputError, find_user_error, one_line
from src.models.loading import load_state_checked, load_weights, safe_load
from src.models.param_groups import (
    ParamGroup,
    apply_lr_scales,
    build_param_groups,
    freeze_param_groups,
)


class ImageClassifier(LightningModule):
    """Trains `backbone` with cross-entropy; logs loss and accuracy per stage.

    Logged metrics: `train/loss`, `train/acc`, `val/loss`, `val/acc`, `val/acc_best` (best epoch so far),
    `test/loss`, `test/acc`. The optimiser and scheduler are injected from the config and built in
    `configure_optimizers`, with per-group settings from `param_groups`.

    >>> from src.models.components import LeNet
    >>> model = ImageClassifier(LeNet(num_classes=10), num_classes=10)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])

    Args:
        backbone: The network; maps images (N, C, H, W) to logits (N, num_classes).
        num_classes: Number of classes (linked from the datamodule by the CLI).
        in_channels: Input channels (linked from the datamodule).
        image_size: Input (height, width) (linked from the datamodule).
        class_names: Class names, index = label id (linked from the datamodule; saved in checkpoints).
        mean: Per-channel mean the datamodule normalises inputs with (linked; saved in checkpoints, so
            `normalize` can prepare raw images for prediction and export). Default 0.
        std: Per-channel standard deviation of that normalisation (linked). Default 1.
        optimizer: Optimiser factory, e.g. `torch.optim.AdamW` with its `init_args` in the config.
        scheduler: Learning-rate scheduler factory (e.g. `StepLR`, `MultiStepLR`), or None.
        scheduler_interval: Step the scheduler every `epoch` or every optimiser `step`.
        scheduler_frequency: Step the scheduler every this many intervals.
        scheduler_monitor: Metric a `ReduceLROnPlateau` scheduler watches.
        param_groups: Per-group lr / lr_scale / weight_decay / freeze, selected by parameter name.
        backbone_weights: A state_dict file to initialise the network from, e.g. weights trained elsewhere.
        compile: Compile the network with `torch.compile` when the Trainer sets the model up: `true`, or
            the keyword arguments of `torch.compile` (e.g. `{mode: max-autotune, dynamic: false}`). The
            network is compiled in place (`nn.Module.compile`), so the state dict, the checkpoints and
            everything that loads them keep the plain parameter names. The first batches are slow (they
            compile); a batch of a new size compiles once more, after which, with the default
            `dynamic=None`, the batch dimension is dynamic.
    """

    # Buffers registered in `__init__` (typed here: `nn.Module.__getattr__` returns `Tensor | Module`).
    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        in_channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        class_names: list[str] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scheduler_frequency: int = 1,
        scheduler_monitor: str = "val/loss",
        param_groups: list[ParamGroup] | None = None,
        backbone_weights: str | None = None,
        compile: bool | dict[str, Any] = False,
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # When built by the CLI the backbone is saved as its config; otherwise as the module's weights.
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters()
        self.backbone = backbone
        if backbone_weights:
            load_weights(self.backbone, backbone_weights, "model.backbone_weights")
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.param_groups = param_groups or []
        freeze_param_groups(self, self.param_groups)  # also checks every pattern matches something

        self.criterion = nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.example_input_array = torch.zeros(1, in_channels, *image_size)
        # Not saved in the state dict: they are rebuilt from the hyperparameters.
        stats = {"input_mean": mean or [0.0] * in_channels, "input_std": std or [1.0] * in_channels}
        for name, values in stats.items():
            self.register_buffer(name, torch.tensor(values).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike,
        device: str | torch.device = "cpu",
        weights_only: bool = True,
        key: str = "CHECKPOINT",
    ) -> ImageClassifier:
        """The trained model of a checkpoint file, in eval mode on `device`: prediction, export, serving.

        Unlike Lightning's `load_from_checkpoint`, every way the file can be wrong is one line naming it:
        the network is rebuilt from the class path and arguments in the checkpoint's hyperparameters
        (Lightning only instantiates already-imported subclasses), its weights are checked against the
        network (missing/unexpected keys and shape mismatches listed), then loaded. The file is read by
        `safe_load` (see it for `weights_only`).

        Args:
            checkpoint: A `.ckpt` file written by `python -m src.cli fit`.
            device: Where the model goes.
            weights_only: See `safe_load`; with False, also a checkpoint of a model built in Python around
                a network object, or a whole `ImageClassifier` saved with `torch.save(model)`.
            key: The option the path came from, which error messages start with.

        Raises:
            UserInputError: The file is missing, empty, corrupt, not a checkpoint of `ImageClassifier`,
                holds pickled objects while `weights_only`, or weights of another network.
        """
        path = Path(checkpoint).expanduser()
        content = safe_load(path, key, weights_only, opt_in="--no-weights-only")
        if isinstance(content, cls):  # a whole pickled model (only without weights_only)
            return content.to(device).eval()
        not_ours = f"{key}: {path} is not a checkpoint of this project's {cls.__name__}"
        if isinstance(content, nn.Module):
            raise UserInputError(f"{not_ours} (it holds a pickled {type(content).__name__})")
        if not isinstance(content, Mapping) or not isinstance(content.get("state_dict"), Mapping):
            kind = (
                "a state dict of weights only"
                if isinstance(content, Mapping)
                else f"a {type(content).__name__}"
            )
            raise UserInputError(
                f"{not_ours} (it holds {kind}; "
                "a network's weights go in `model.backbone_weights` for training)"
            )
        if "hyper_parameters" not in content:
            raise UserInputError(f"{not_ours} (it has no hyperparameters to rebuild the network from)")
        # Rebuild the model from the hyperparameters alone, then check the weights fit before loading
        # them, so that a mismatch is reported as lists of keys instead of torch's page-long message.
        skeleton = {k: v for k, v in content.items() if k not in ("state_dict", "optimizer_states")}
        buffer = io.BytesIO()
        torch.save({**skeleton, "state_dict": {}}, buffer)
        buffer.seek(0)
        try:
            with warnings.catch_warnings():
                # Lightning warns that the (empty) state dict lacks the model's keys: they are loaded below.
                warnings.simplefilter("ignore")
                # `backbone_weights` only initialised the network before training; the checkpoint has them.
                model = cls.load_from_checkpoint(
                    buffer, map_location="cpu", strict=False, weights_only=weights_only, backbone_weights=None
                )
        except Exception as err:
            user_error = find_user_error(err)
            reason = str(user_error) if user_error is not None else f"{type(err).__name__}: {one_line(err)}"
            raise UserInputError(f"{not_ours} (cannot rebuild the model from it: {reason})") from err
        network = type(model.backbone).__name__
        message = f"{key}: {path}: its weights do not fit its {network}"
        load_state_checked(model, content["state_dict"], message)
        return model.to(device).eval()

    def configure_model(self) -> None:
        """Compile the network (once) if `compile` asks for it; the Trainer calls this for every stage."""
        options = self.hparams.get("compile", False)
        if options and not getattr(self, "_backbone_compiled", False):
            self.backbone.compile(**(options if isinstance(options, dict) else {}))
            self._backbone_compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        return self.backbone(x)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise raw images (N, C, H, W, floats in [0, 1]) as the training data was."""
        return (images - self.input_mean) / self.input_std

    def _shared_step(self, batch, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy):
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        loss_metric(loss)
        acc_metric(logits, y)
        return loss, logits

    def on_train_start(self) -> None:
        # The sanity check ran validation before training; start the best-so-far from scratch.
        self.val_acc_best.reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch, self.train_loss, self.train_acc)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Log loss and accuracy; return `{"loss", "preds"}` (predicted class ids) for callbacks."""
        loss, logits = self._shared_step(batch, self.val_loss, self.val_acc)
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)
        return {"loss": loss, "preds": logits.argmax(dim=1)}

    def on_validation_epoch_end(self) -> None:
        # `val_acc.compute()` is already synchronised across processes, so every process holds the same
        # best value; `sync_dist` (once per epoch) tells Lightning so instead of a warning under DDP.
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Log loss and accuracy; return `{"loss", "preds"}` (predicted class ids) for callbacks."""
        loss, logits = self._shared_step(batch, self.test_loss, self.test_acc)
        self.log("test/loss", self.test_loss)
        self.log("test/acc", self.test_acc)
        return {"loss": loss, "preds": logits.argmax(dim=1)}

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Class probabilities (N, num_classes) of a batch (images, or (images, labels))."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self):
        optimizer = self.optimizer(build_param_groups(self, self.param_groups))
        apply_lr_scales(optimizer)
        if self.scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler(optimizer),
                "interval": self.hparams.scheduler_interval,
                "frequency": self.hparams.scheduler_frequency,
                "monitor": self.hparams.scheduler_monitor,
            },
        }
