"""Fine-tuning: a frozen pretrained body under a new head, unfrozen at epoch N at a smaller learning rate."""

from __future__ import annotations

import pytest
import torch
import torchvision
from lightning import Callback

from src.lightning_cli import cli_main

FINETUNE = """
model:
  init_args:
    backbone:
      class_path: src.models.components.TorchvisionResNet
      init_args: {{arch: resnet18, weights: {weights}}}
    optimizer:
      class_path: torch.optim.SGD
      init_args: {{lr: 0.05, momentum: 0.9}}
    scheduler: null
    param_groups:
      - params: backbone.classifier.*
        name: head
trainer:
  callbacks:
    - class_path: src.callbacks.UnfreezeAtEpoch
      init_args: {{module: backbone.features, epoch: 1, lr_scale: 0.1}}
"""


class RecordEpochs(Callback):
    """Record, at the end of each training epoch, a copy of the parameters and the optimiser's groups."""

    def __init__(self) -> None:
        self.params: list[dict[str, torch.Tensor]] = []
        self.groups: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.params.append({n: p.detach().clone() for n, p in pl_module.named_parameters()})
        self.groups.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})


def test_body_frozen_then_unfrozen_with_the_lr_asked_for(fast_args, overlay, tmp_path):
    weights = tmp_path / "resnet18_pretrained.pth"
    torch.manual_seed(0)
    pretrained = torchvision.models.resnet18().state_dict()
    torch.save(pretrained, weights)
    limits = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    cli = cli_main([*fast_args, *overlay(FINETUNE.format(weights=weights)), *limits], run=False)
    initial = {n: p.detach().clone() for n, p in cli.model.named_parameters()}
    # The body starts from the pretrained weights (conv1 adapted to 1 channel by summing over RGB).
    assert torch.equal(
        initial["backbone.features.layer1.0.conv1.weight"], pretrained["layer1.0.conv1.weight"]
    )
    record = RecordEpochs()
    cli.trainer.callbacks.append(record)
    cli.trainer.fit(cli.model, cli.datamodule)

    body = [n for n in initial if n.startswith("backbone.features.")]
    head = [n for n in initial if n.startswith("backbone.classifier.")]
    after_epoch0, after_epoch1 = record.params
    # Epoch 0: only the head trains, with the optimiser's lr.
    assert all(torch.equal(after_epoch0[n], initial[n]) for n in body)
    assert all(not torch.equal(after_epoch0[n], initial[n]) for n in head)
    assert record.groups[0] == {"head": 0.05}
    # Epoch 1: the body joined the optimiser at 0.1 x lr and trained.
    assert record.groups[1] == pytest.approx({"head": 0.05, "unfrozen": 0.005})
    assert all(p.requires_grad for p in cli.model.parameters())
    changed = [n for n in body if not torch.equal(after_epoch1[n], after_epoch0[n])]
    assert len(changed) == len(body)
