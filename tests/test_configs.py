"""Every shipped config runs as shipped (one batch of fit and test), on generated data where it downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from src.lightning_cli import cli_main
from tests.helpers.cli import REPO
from tests.helpers.files import make_cifar10

CONFIGS = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
#: Configs whose data is downloaded, and the generated stand-in they get here; the others use the
#: bundled sample in samples/ exactly as shipped.
DOWNLOADED = {
    "fashion_mnist.yaml": "fashion_mnist",
    "fashion_mnist_fast.yaml": "fashion_mnist",
    "fashion_mnist_best.yaml": "fashion_mnist",
    "cifar10_cnn.yaml": "cifar10",
    "cifar10_resnet18.yaml": "cifar10",
    "cifar10_timm.yaml": "cifar10",
    "finetune_resnet.yaml": "cifar10",
}
#: The configs for your own data: as shipped they train on the sample's training images alone (a
#: validation split of them, no test set), so that giving your training data is all they need.
GENERIC = {"csv_images.yaml", "image_folder.yaml"}


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory) -> Path:
    """A tiny CIFAR-10 in the real cifar-10-batches-py pickle format."""
    return make_cifar10(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    """A torchvision ResNet-18 state dict standing in for the pretrained ImageNet weights."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_every_config_is_covered():
    assert "quickstart.yaml" in CONFIGS and set(DOWNLOADED) <= set(CONFIGS)


@pytest.mark.parametrize("config", CONFIGS)
def test_shipped_config_runs(
    config, fashion_mnist_root, cifar10_root, resnet18_weights, tmp_path, monkeypatch
):
    # torchvision checks the official MD5s of the CIFAR-10 files; the generated ones only need to exist.
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: Path(path).is_file()
    )
    args = ["fit", "--config", str(REPO / "configs" / config)]
    args += ["--config", str(REPO / "configs" / "trainer" / "debug.yaml")]
    data = DOWNLOADED.get(config)
    if data == "fashion_mnist":
        args += [f"--data.data_dir={fashion_mnist_root}", "--data.val_size=80", "--data.download=false"]
    if data == "cifar10":
        args += [f"--data.data_dir={cifar10_root}", "--data.val_size=40", "--data.download=false"]
    if config == "finetune_resnet.yaml":
        args += [f"--model.backbone.init_args.weights={resnet18_weights}"]
    args += [
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--data.batch_size=16",
        "--data.num_workers=0",
    ]
    monkeypatch.chdir(REPO)  # the bundled-sample configs use paths relative to the repository
    cli = cli_main(args)
    assert cli.trainer.global_step == 1
    assert ("test/acc" in cli.trainer.callback_metrics) == (config not in GENERIC)
    assert not list(tmp_path.rglob("*"))  # the debug preset leaves no logs or checkpoints
