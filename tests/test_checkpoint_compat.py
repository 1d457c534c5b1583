"""Checkpoints name classes by their import paths (`src.models.ImageClassifier`, `src.models.components.
ConvNet`, ...): a checkpoint written by an earlier version of this template still loads and predicts the
same. `tests/assets/checkpoint_v0.1.ckpt` was trained before the modules were re-laid out; its JSON holds
the probabilities that version computed."""

from __future__ import annotations

import json

import torch

from src.lightning_cli import cli_main
from src.models import ImageClassifier
from tests.helpers.cli import REPO

ASSETS = REPO / "tests" / "assets"
OLD = ASSETS / "checkpoint_v0.1.ckpt"


def test_an_old_checkpoint_predicts_what_it_did():
    expected = json.loads((ASSETS / "checkpoint_v0.1.json").read_text())
    model = ImageClassifier.from_checkpoint(OLD)
    assert model.class_names == expected["class_names"]
    x = torch.linspace(0, 1, 2 * 28 * 28).view(2, 1, 28, 28)
    with torch.no_grad():
        probs = model(model.normalize(x)).softmax(-1)
    torch.testing.assert_close(probs, torch.tensor(expected["probabilities"]), rtol=0, atol=1e-6)


def test_an_old_checkpoint_is_tested_by_the_cli(fast_args):
    # Its hyperparameters (a smaller ConvNet than the config's) replace the config's model.
    cli = cli_main(["test", *fast_args, f"--ckpt_path={OLD}", "--trainer.limit_test_batches=1"])
    assert cli.model.hparams.backbone["init_args"]["widths"] == [4, 8]
    assert 0 <= cli.trainer.callback_metrics["test/acc"] <= 1
