"""Fine-tuning as in the tutorials: train a new head on a frozen pretrained body, then unfreeze the body."""

from __future__ import annotations

from lightning import LightningModule
from lightning.pytorch.callbacks import BaseFinetuning
from torch.optim import Optimizer


class UnfreezeAtEpoch(BaseFinetuning):
    """Freeze a submodule (the network's body) before training and unfreeze it at epoch `epoch`.

    Built on Lightning's `BaseFinetuning`: when the module is unfrozen its parameters join the optimiser as a
    new parameter group named `name`, at `lr_scale` times the optimiser's configured `lr` (e.g. 0.1 for a
    pretrained body under a freshly initialised head). Its state is saved in checkpoints, so a resumed run
    knows whether the body was already unfrozen.

    Args:
        module: Name of the submodule in the LightningModule, e.g. `backbone.features`.
        epoch: First epoch (0-based) in which the submodule trains.
        lr_scale: Learning rate of the unfrozen parameters, relative to the optimiser's `lr`.
        train_bn: Also train the batch-norm layers of the submodule once unfrozen (while frozen, their
            weights and running statistics are not updated).
        name: Name of the new parameter group (shown by the learning-rate monitor).
    """

    def __init__(
        self,
        module: str = "backbone.features",
        epoch: int = 1,
        lr_scale: float = 0.1,
        train_bn: bool = True,
        name: str = "unfrozen",
    ) -> None:
        super().__init__()
        self.module = module
        self.epoch = epoch
        self.lr_scale = lr_scale
        self.train_bn = train_bn
        self.name = name

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        self.freeze(pl_module.get_submodule(self.module), train_bn=False)

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch != self.epoch:
            return
        self.unfreeze_and_add_param_group(
            pl_module.get_submodule(self.module),
            optimizer,
            lr=optimizer.defaults["lr"] * self.lr_scale,
            train_bn=self.train_bn,
        )
        optimizer.param_groups[-1]["name"] = self.name
