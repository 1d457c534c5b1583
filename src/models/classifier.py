"""The image-classification system: a LightningModule that wraps any plain `nn.Module` network."""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal, cast

import torch
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.nn import functional as F
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.models.loading import load_weights
from src.models.metrics import class_weights, extra_metrics
from src.models.param_groups import (
    ParamGroup,
    apply_lr_scales,
    build_param_groups,
    freeze_param_groups,
)
from src.models.rebuild import rebuild_from_checkpoint
from src.models.schedules import build_schedule, length_argument, run_length, scale_lr, warmup_length


class ImageClassifier(LightningModule):
    """Trains `backbone` with cross-entropy; logs loss and accuracy per stage.

    Logged metrics: `train/loss`, `train/acc`, `val/loss`, `val/acc`, `val/acc_best` (best epoch so far),
    `val/acc_macro` (balanced accuracy: the mean of the per-class recalls), `test/loss`, `test/acc`,
    `test/acc_macro`, and `val/acc_top5`, `test/acc_top5` when there are more than 5 classes. The
    optimiser and scheduler are injected from the config and built in `configure_optimizers`, with
    per-group settings from `param_groups`, an optional warm-up, and the run's length filled in.

    Training batches may carry soft targets (N, num_classes) instead of class ids, as MixUp/CutMix give
    (`data.mixup_alpha`, `data.cutmix_alpha`): the loss is then the cross-entropy with those
    probabilities, and `train/acc` counts the target's largest share as the right class.

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
        label_smoothing: Label smoothing of the cross-entropy (0.1 in timm's and torchvision's recipes).
        warmup_epochs: Linear learning-rate warm-up over this many epochs (a fraction of one with
            `scheduler_interval: step`) before `scheduler` takes over for the rest of the run.
        warmup_steps: The warm-up in optimiser steps instead (with `scheduler_interval: step`).
        warmup_start_factor: The warm-up starts at this fraction of each group's learning rate.
        lr_batch_size: The batch size the optimiser's `lr` is meant for (e.g. 256, timm's `--lr-base-size`):
            every learning rate is scaled by global batch / `lr_batch_size`, where the global batch is
            `data.batch_size` x processes x `trainer.accumulate_grad_batches`. None: used as given.
        channels_last: Keep the network and its inputs in channels-last memory format (faster convolutions
            with mixed precision on recent GPUs).
        tta: Test-time augmentation in `test` and `predict` (and the prediction commands): average the
            class probabilities of each image and its left-right mirror image.
        class_weights: Weigh the training loss by class: `auto` (n / (classes x the class's count in the
            training split), so rare classes count as much as common ones) or one weight per class; None:
            unweighted. `val/loss` and `test/loss` stay unweighted, so runs compare.
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
        label_smoothing: float = 0.0,
        warmup_epochs: float = 0.0,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.01,
        lr_batch_size: int | None = None,
        channels_last: bool = False,
        tta: bool = False,
        class_weights: Literal["auto"] | list[float] | None = None,
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

        self.tta = tta
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.extra_metrics = extra_metrics(num_classes)  # macro accuracy; top-5 with more than 5 classes
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.example_input_array = torch.zeros(1, in_channels, *image_size)
        # Not saved in the state dict: they are rebuilt from the hyperparameters.
        stats = {"input_mean": mean or [0.0] * in_channels, "input_std": std or [1.0] * in_channels}
        for name, values in stats.items():
            self.register_buffer(name, torch.tensor(values).view(1, -1, 1, 1), persistent=False)
        self.loss_weight: torch.Tensor | None = None  # set by `setup` from `class_weights`

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike,
        device: str | torch.device = "cpu",
        weights_only: bool = True,
        key: str = "CHECKPOINT",
        tta: bool | None = None,
    ) -> ImageClassifier:
        """The trained model of a checkpoint file, in eval mode on `device`: prediction, export, serving.

        Unlike Lightning's `load_from_checkpoint`, every way the file can be wrong is one line naming it
        (see `rebuild_from_checkpoint`); the file is read by `safe_load` (see it for `weights_only`).

        Args:
            checkpoint: A `.ckpt` file written by `python -m src.cli fit`.
            device: Where the model goes.
            weights_only: See `safe_load`; with False, also a checkpoint of a model built in Python around
                a network object, or a whole `ImageClassifier` saved with `torch.save(model)`.
            key: The option the path came from, which error messages start with.
            tta: Set the model's `tta` (flip averaging); None keeps the checkpoint's.

        Raises:
            UserInputError: The file is missing, empty, corrupt, not a checkpoint of `ImageClassifier`,
                holds pickled objects while `weights_only`, or weights of another network.
        """
        model = rebuild_from_checkpoint(cls, checkpoint, device, weights_only, key)
        if tta is not None:
            model.tta = tta
        return model

    def configure_model(self) -> None:
        """Compile the network (once) if `compile` asks for it, after putting it in channels-last format
        if `channels_last` asks for it; the Trainer calls this for every stage."""
        if self.hparams.get("channels_last"):
            self.backbone.to(memory_format=torch.channels_last)
        options = self.hparams.get("compile", False)
        if options and not getattr(self, "_backbone_compiled", False):
            self.backbone.compile(**(options if isinstance(options, dict) else {}))
            self._backbone_compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        if self.hparams.get("channels_last") and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for evaluation: with `tta`, the log of the mean softmax of `x` and of `x` mirrored
        left-right (so their softmax is the averaged probabilities); else the plain logits."""
        if not self.tta:
            return self(x)
        probs = (self(x).softmax(dim=-1) + self(x.flip(-1)).softmax(dim=-1)) / 2
        return probs.log()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, num_classes) of a batch of normalised images (`tta` included)."""
        return self.eval_logits(x).softmax(dim=-1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise raw images (N, C, H, W, floats in [0, 1]) as the training data was."""
        return (images - self.input_mean) / self.input_std

    def setup(self, stage: str) -> None:
        """Work out `class_weights` for training (`auto` counts the datamodule's training split)."""
        setting = self.hparams.get("class_weights")
        if stage != "fit" or setting is None:
            return
        counts = getattr(getattr(self.trainer, "datamodule", None), "class_counts", lambda: None)()
        self.loss_weight = class_weights(setting, self.hparams["num_classes"], counts)
        rank_zero_info(f"Class weights of the training loss: {self.loss_weight.tolist()}")

    def _shared_step(self, batch, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy, stage: str):
        x, y = batch
        logits = self.eval_logits(x) if stage == "test" else self(x)
        if stage == "train" and self.loss_weight is not None:
            weight = self.loss_weight.to(logits.device, logits.dtype)
            loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=self.criterion.label_smoothing)
        else:
            loss = self.criterion(logits, y)  # y: class ids, or soft targets (N, num_classes)
        labels = y.argmax(dim=1) if y.ndim == 2 else y
        loss_metric(loss)
        acc_metric(logits, labels)
        for key, metric in self.extra_metrics.items():
            if key.startswith(f"{stage}_"):
                metric = cast(MulticlassAccuracy, metric)
                metric(logits, labels)
                self.log(key.replace("_", "/", 1), metric)
        return loss, logits

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # the sanity check ran validation before training

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch, self.train_loss, self.train_acc, "train")
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Log loss and accuracy; return `{"loss", "preds"}` (predicted class ids) for callbacks."""
        loss, logits = self._shared_step(batch, self.val_loss, self.val_acc, "val")
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)
        return {"loss": loss, "preds": logits.argmax(dim=1)}

    def on_validation_epoch_end(self) -> None:
        # `compute()` is synchronised across processes; `sync_dist` only avoids a warning under DDP.
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Log loss and accuracy; return `{"loss", "preds"}` (predicted class ids) for callbacks."""
        loss, logits = self._shared_step(batch, self.test_loss, self.test_acc, "test")
        self.log("test/loss", self.test_loss)
        self.log("test/acc", self.test_acc)
        return {"loss": loss, "preds": logits.argmax(dim=1)}

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Class probabilities (N, num_classes) of a batch (images, or (images, labels))."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.probabilities(x)

    def configure_optimizers(self):
        """The optimiser over `param_groups`, with lr scaled to the global batch (`lr_batch_size`), and
        the scheduler with a warm-up in front and its length from the Trainer (`src.models.schedules`)."""
        hp = self.hparams
        optimizer = self.optimizer(build_param_groups(self, self.param_groups))
        apply_lr_scales(optimizer)
        if hp.get("lr_batch_size"):
            trainer = self.trainer
            batch = trainer.datamodule.batch_size * trainer.world_size * trainer.accumulate_grad_batches
            factor = scale_lr(optimizer, batch, hp.lr_batch_size)
            size = hp.lr_batch_size
            rank_zero_info(f"Learning rates x {factor:g}: global batch {batch} / lr_batch_size {size}")
        warmup_asked = hp.get("warmup_epochs") or hp.get("warmup_steps")
        if self.scheduler is None and not warmup_asked:
            return optimizer
        if warmup_asked or length_argument(self.scheduler):  # the run's length is needed
            total, per_epoch = run_length(self.trainer, hp.scheduler_interval)
            warmup = warmup_length(hp.warmup_epochs, hp.warmup_steps, hp.scheduler_interval, per_epoch)
            if getattr(self.trainer, "fast_dev_run", False):  # a one-batch check: no room for a warm-up
                warmup = min(warmup, total - 1)
            scheduler = build_schedule(optimizer, self.scheduler, total, warmup, hp.warmup_start_factor)
        else:
            scheduler = self.scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": hp.scheduler_interval,
                "frequency": hp.scheduler_frequency,
                "monitor": hp.scheduler_monitor,
            },
        }
