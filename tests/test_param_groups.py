"""Per-parameter-group learning rates, weight decay and freezing, as asked for by a config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from src.errors import UserInputError
from src.lightning_cli import cli_main
from src.models import ImageClassifier, ParamGroup
from src.models.components import LeNet

GROUPS = """
model:
  init_args:
    optimizer:
      class_path: torch.optim.SGD
      init_args: {lr: 0.1, momentum: 0.9, weight_decay: 0.001}
    scheduler: null
    param_groups:
      - params: backbone.classifier.*
        lr: 0.05
        name: head
      - params: backbone.features.0.*
        freeze: true
        name: first_block
      - params: "*.bias"
        lr_scale: 0.1
        weight_decay: 0.0
"""


def test_optimizer_from_config_has_the_groups_asked_for(fast_args, overlay):
    cli = cli_main([*fast_args, *overlay(GROUPS)], run=False)
    model = cli.model
    optimizer = model.configure_optimizers()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert list(groups) == ["head", "*.bias", "default"]
    assert groups["head"]["lr"] == pytest.approx(0.05)
    assert groups["head"]["weight_decay"] == pytest.approx(0.001)
    assert groups["*.bias"]["lr"] == pytest.approx(0.01)
    assert groups["*.bias"]["weight_decay"] == 0.0
    assert groups["default"]["lr"] == pytest.approx(0.1)

    names = {id(p): n for n, p in model.named_parameters()}
    in_group = {g["name"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    assert all(n.startswith("backbone.classifier.") for n in in_group["head"])
    assert all(n.endswith(".bias") and not n.startswith("backbone.classifier.") for n in in_group["*.bias"])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("backbone.features.0.") for n in frozen)
    assert not frozen & set().union(*in_group.values())
    # Every trainable parameter is in exactly one group.
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(trainable) == sorted(n for g in in_group.values() for n in g)


def test_frozen_parameters_do_not_change_in_training(fast_args, overlay):
    extra = [
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=3",
        "--trainer.limit_val_batches=1",
    ]
    cli = cli_main([*fast_args, *overlay(GROUPS), *extra], run=False)
    before = {n: p.detach().clone() for n, p in cli.model.named_parameters()}
    cli.trainer.fit(cli.model, cli.datamodule)
    after = dict(cli.model.named_parameters())
    for name, value in before.items():
        changed = not torch.equal(value, after[name])
        assert changed != name.startswith("backbone.features.0."), name


def test_pattern_that_matches_nothing_is_an_error():
    with pytest.raises(
        UserInputError, match=r"param_groups\[0\]\.params.*'backbone\.clasifier\.\*'.*did you mean"
    ):
        ImageClassifier(LeNet(), num_classes=10, param_groups=[ParamGroup(params="backbone.clasifier.*")])


def test_lr_and_lr_scale_together_is_an_error():
    with pytest.raises(UserInputError, match=r"param_groups\[0\].*not both"):
        ImageClassifier(LeNet(), num_classes=10, param_groups=[ParamGroup("*", lr=0.1, lr_scale=0.5)])


def test_first_matching_group_wins():
    model = ImageClassifier(
        LeNet(),
        num_classes=10,
        optimizer=lambda params: torch.optim.SGD(params, lr=1.0),
        param_groups=[ParamGroup("backbone.classifier.*", lr=0.5), ParamGroup("*.bias", lr=0.25)],
    )
    optimizer = model.configure_optimizers()
    lrs = {g["name"]: (g["lr"], len(g["params"])) for g in optimizer.param_groups}
    assert lrs == {"backbone.classifier.*": (0.5, 6), "*.bias": (0.25, 2), "default": (1.0, 2)}


def test_typo_through_the_command_line_exits_with_one_line(fast_args, overlay, tmp_path):
    typo = overlay(GROUPS.replace("backbone.classifier.*", "backbone.clasifier.*"), name="typo.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "src.cli", "fit", *fast_args, *typo],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.param_groups[0].params: pattern 'backbone.clasifier.*'")
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))
