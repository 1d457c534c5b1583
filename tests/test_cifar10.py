"""The CIFAR-10 datamodule, read through torchvision's own CIFAR10 class from generated pickle batches."""

from __future__ import annotations

import os
import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from torchvision.datasets import CIFAR10
from torchvision.transforms import v2

from src.data import CIFAR10DataModule
from src.errors import UserInputError
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO, error_lines, run_cli_main
from tests.helpers.files import CIFAR10_CLASSES, flatten_transforms, make_cifar10


@pytest.fixture(autouse=True)
def _no_md5_check(monkeypatch):
    """Generated files cannot have the official MD5 sums: check only that they exist (parsing stays real).

    `CIFAR10._check_integrity` (the batches) and `_load_meta` (batches.meta) both call this function.
    """

    def exists(fpath, md5=None) -> bool:
        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory):
    """A tiny CIFAR-10: 5 training batches of 40 images (200) and a test batch of 40."""
    return make_cifar10(tmp_path_factory.mktemp("cifar"), n_per_batch=40, n_test=40)


def make_dm(root, **kwargs) -> CIFAR10DataModule:
    # The per-sample path (tests/test_fast_data.py checks the in-memory one).
    kwargs = {
        "val_size": 50,
        "batch_size": 16,
        "num_workers": 0,
        "download": False,
        "in_memory": False,
        **kwargs,
    }
    return CIFAR10DataModule(data_dir=str(root), **kwargs)


def _augments(transform) -> bool:
    return any(isinstance(t, v2.RandomCrop | v2.RandomHorizontalFlip) for t in flatten_transforms(transform))


def test_generated_files_are_read_as_the_real_format(cifar10_root):
    dataset = CIFAR10(str(cifar10_root), train=False)
    assert len(dataset) == 40 and dataset.classes == CIFAR10_CLASSES
    with (cifar10_root / "cifar-10-batches-py" / "test_batch").open("rb") as file:
        batch = pickle.load(file, encoding="latin1")
    image, label = dataset[3]
    pixels = np.asarray(image)  # HWC, decoded by torchvision from the (N, 3072) channel planes
    assert pixels.shape == (32, 32, 3) and label == batch["labels"][3]
    assert np.array_equal(pixels.transpose(2, 0, 1).reshape(-1), batch["data"][3])
    row = 2 + label * 28 // 10  # class_images draws a bright band across this row
    assert pixels[row].min() == 230


def test_class_facts_exist_before_any_file(tmp_path):
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "nothing"))
    assert dm.class_names == CIFAR10_CLASSES and dm.num_classes == 10
    assert dm.in_channels == 3 and dm.image_size == (32, 32) and dm.val_size == 5000


def test_val_and_test_use_eval_transforms(cifar10_root):
    dm = make_dm(cifar10_root)
    dm.setup("fit")
    dm.setup("test")
    train = list(flatten_transforms(dm.train_set.dataset.transform))
    assert any(isinstance(t, v2.RandomCrop) and t.padding == [4, 4, 4, 4] for t in train)
    assert any(isinstance(t, v2.RandomHorizontalFlip) for t in train)
    assert not _augments(dm.val_set.dataset.transform)
    assert not _augments(dm.test_set.transform)
    torch.manual_seed(0)
    a = dm.val_set[0][0]
    torch.manual_seed(1)
    assert torch.equal(a, dm.val_set[0][0])


def test_split_is_seeded(cifar10_root):
    first, again, other = (make_dm(cifar10_root, seed=s) for s in (1, 1, 2))
    for dm in (first, again, other):
        dm.setup("fit")
    assert first.val_set.indices == again.val_set.indices != other.val_set.indices
    assert not set(first.train_set.indices) & set(first.val_set.indices)


def test_missing_files_without_download_name_the_folder(tmp_path):
    with pytest.raises(UserInputError) as err:
        make_dm(tmp_path / "empty", download=False).prepare_data()
    message = str(err.value)
    assert str((tmp_path / "empty" / "cifar-10-batches-py").resolve()) in message
    assert "data.download is false" in message and "cifar-10-python.tar.gz" in message
    assert "\n" not in message


def test_missing_files_offline_name_the_folder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserInputError) as err:
        make_dm(tmp_path / "offline", download=True).prepare_data()
    message = str(err.value)
    assert str((tmp_path / "offline" / "cifar-10-batches-py").resolve()) in message
    assert "download failed" in message and "cifar-10-python.tar.gz" in message and "\n" not in message


def test_cli_links_the_cifar10_facts_into_the_model(cifar10_root):
    cli = cli_main(
        [
            "--config",
            str(REPO / "configs" / "fashion_mnist.yaml"),
            "--data=src.data.CIFAR10DataModule",
            f"--data.data_dir={cifar10_root}",
            "--data.download=false",
            "--trainer.accelerator=cpu",
        ],
        run=False,
    )
    assert isinstance(cli.datamodule, CIFAR10DataModule)
    assert cli.model.hparams.in_channels == 3 and cli.model.hparams.image_size == (32, 32)
    assert cli.model.hparams.class_names == CIFAR10_CLASSES


@pytest.mark.parametrize("content", [{"data": "x"}, ["not", "a", "dict"], b"\x80\x02 truncated"])
def test_malformed_batch_files_are_one_line_naming_the_file(tmp_path, monkeypatch, capsys, content):
    root = make_cifar10(tmp_path / "data", n_per_batch=4, n_test=4)
    bad = root / "cifar-10-batches-py" / "data_batch_3"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        with bad.open("wb") as file:
            pickle.dump(content, file, protocol=2)
    with pytest.raises(UserInputError) as err:
        make_dm(root).prepare_data()
    assert str(err.value).startswith(f"CIFAR10: cannot read {bad}: the file is damaged")
    assert "\n" not in str(err.value)
    # Through the command line: one `error:` line, exit status 1.
    args = ["fit", "--config", str(REPO / "configs" / "cifar10_cnn.yaml"), f"--data.data_dir={root}"]
    args += ["--data.download=false", f"--trainer.default_root_dir={tmp_path / 'out'}"]
    status, output = run_cli_main(monkeypatch, capsys, args)
    assert status == 1 and error_lines(output) == [f"error: {err.value}"]
