"""The FashionMNIST datamodule, read through torchvision's own FashionMNIST class from generated IDX files."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import torch
from torchvision.transforms import v2

from src.data import FashionMNISTDataModule
from src.errors import UserInputError
from tests.helpers.files import flatten_transforms, has_transform


def make_dm(root, **kwargs) -> FashionMNISTDataModule:
    # The per-sample path (tests/test_fast_data.py checks the in-memory one).
    kwargs = {
        "val_size": 80,
        "batch_size": 16,
        "num_workers": 0,
        "download": False,
        "in_memory": False,
        **kwargs,
    }
    return FashionMNISTDataModule(data_dir=str(root), **kwargs)


def test_class_names_are_torchvisions(fashion_mnist_root):
    dm = make_dm(fashion_mnist_root)
    assert dm.num_classes == len(dm.class_names) == 10
    assert dm.class_names[0] == "T-shirt/top"


def test_train_and_val_are_disjoint_and_cover_the_training_set(fashion_mnist_root):
    dm = make_dm(fashion_mnist_root)
    dm.setup("fit")
    train, val = set(dm.train_set.indices), set(dm.val_set.indices)
    assert not train & val
    assert train | val == set(range(320))


def test_split_is_seeded(fashion_mnist_root):
    first, again, other = (make_dm(fashion_mnist_root, seed=s) for s in (1, 1, 2))
    for dm in (first, again, other):
        dm.setup("fit")
    assert first.val_set.indices == again.val_set.indices
    assert first.val_set.indices != other.val_set.indices


def test_val_size_as_fraction(fashion_mnist_root):
    dm = make_dm(fashion_mnist_root, val_size=0.25)
    dm.setup("fit")
    assert len(dm.val_set) == 80


@pytest.mark.parametrize("val_size", [0, 320, 1.5])
def test_bad_val_size_is_a_clear_error(fashion_mnist_root, val_size):
    with pytest.raises(UserInputError, match="data.val_size"):
        make_dm(fashion_mnist_root, val_size=val_size).setup("fit")


def test_validation_gets_eval_transforms_only(fashion_mnist_root):
    dm = make_dm(fashion_mnist_root, augment=True)
    dm.setup("fit")
    dm.setup("test")

    def has_flip(transform) -> bool:
        return has_transform(transform, v2.RandomHorizontalFlip)

    assert has_flip(dm.train_set.dataset.transform)
    assert not has_flip(dm.val_set.dataset.transform)
    assert not has_flip(dm.test_set.transform)
    # Separate dataset instances: the validation split does not share the augmented one.
    assert dm.val_set.dataset is not dm.train_set.dataset
    # Evaluation samples are deterministic.
    torch.manual_seed(0)
    a = dm.val_set[0][0]
    torch.manual_seed(1)
    assert torch.equal(a, dm.val_set[0][0])


def test_augment_off_uses_eval_transforms_for_training(fashion_mnist_root):
    dm = make_dm(fashion_mnist_root, augment=False)
    dm.setup("fit")
    assert not any(
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(dm.train_set.dataset.transform)
    )


def test_missing_files_without_download_name_the_folder(tmp_path):
    dm = make_dm(tmp_path / "empty", download=False)
    with pytest.raises(UserInputError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str((tmp_path / "empty" / "FashionMNIST" / "raw").resolve()) in message
    assert "data.download is false" in message and "\n" not in message


def test_missing_files_offline_name_the_folder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dm = make_dm(tmp_path / "offline", download=True)
    with pytest.raises(UserInputError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str((tmp_path / "offline" / "FashionMNIST" / "raw").resolve()) in message
    assert "download failed" in message and "\n" not in message


@pytest.mark.parametrize(
    ("train_subset", "expected"), [(60, 60), (60.0, 60), (0.25, 60), (1, 240), (None, 240)]
)
def test_train_subset_draws_from_the_training_split_only(fashion_mnist_root, train_subset, expected):
    dm = make_dm(fashion_mnist_root, train_subset=train_subset)
    dm.setup("fit")
    full = make_dm(fashion_mnist_root)
    full.setup("fit")
    assert len(dm.train_set) == expected
    assert set(dm.train_set.indices) <= set(full.train_set.indices)
    assert dm.val_set.indices == full.val_set.indices


def test_train_subset_is_seeded(fashion_mnist_root):
    first, again, other = (make_dm(fashion_mnist_root, train_subset=50, seed=s) for s in (1, 1, 2))
    for dm in (first, again, other):
        dm.setup("fit")
    assert first.train_set.indices == again.train_set.indices != other.train_set.indices


@pytest.mark.parametrize("train_subset", [0, 241, 2.5, -0.5])
def test_bad_train_subset_is_a_clear_error(fashion_mnist_root, train_subset):
    with pytest.raises(UserInputError, match="data.train_subset"):
        make_dm(fashion_mnist_root, train_subset=train_subset).setup("fit")


def test_compute_mean_std_reads_the_unaugmented_training_split(fashion_mnist_root):
    dm = make_dm(fashion_mnist_root)
    mean, std = dm.compute_mean_std()
    dm.setup("fit")
    raw = dm.train_set.dataset.data[dm.train_set.indices].double() / 255
    assert mean == pytest.approx([raw.mean().item()])
    assert std == pytest.approx([raw.std(unbiased=False).item()])


@pytest.mark.parametrize("in_memory", [False, True])
def test_drop_last_keeps_training_batches_full_and_evaluation_complete(fashion_mnist_root, in_memory):
    # 240 training images in batches of 64: 3 full batches and one of 48, which drop_last leaves out.
    dm = make_dm(fashion_mnist_root, batch_size=64, drop_last=True, in_memory=in_memory)
    dm.setup("fit")
    sizes = [len(labels) for _, labels in dm.train_dataloader()]
    assert len(dm.train_set) == 240 and sizes == [64, 64, 64]
    assert sum(len(labels) for _, labels in dm.val_dataloader()) == 80  # validation drops nothing
