"""Images in one sub-folder per class: the ImageFolder datamodule, on generated PNG folders."""

from __future__ import annotations

import pytest
from torchvision.transforms import v2

from src.data import ImageFolderDataModule
from src.errors import UserInputError
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO
from tests.helpers.files import flatten_transforms, make_image_folder

CLASSES = ["cat", "dog", "frog"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """train/ (8 per class), val/ (2 per class) and test/ (3 per class), mixed sizes and modes."""
    root = tmp_path_factory.mktemp("folders")
    for name, n in (("train", 8), ("val", 2), ("test", 3)):
        make_image_folder(root / name, tuple(CLASSES), n_per_class=n)
    (root / "train" / "notes.txt").write_text("not a class: files next to the class folders are ignored")
    make_image_folder(root / "other_classes", ("cat", "dog", "horse"), n_per_class=1)
    return root


def make_dm(root, **kwargs) -> ImageFolderDataModule:
    # The per-sample path (decoded in every epoch): tests/test_cache.py covers the cached one.
    kwargs = {"val_size": 6, "batch_size": 4, "num_workers": 0, "cache": "none"} | kwargs
    return ImageFolderDataModule(root=str(root / "train"), **kwargs)


def test_class_facts_are_known_before_setup(folders):
    dm = make_dm(folders, channels=1, image_size=(20, 24))
    assert dm.class_names == CLASSES and dm.num_classes == 3
    assert dm.in_channels == 1 and dm.image_size == (20, 24)


def test_validation_gets_eval_transforms_and_split_is_seeded(folders):
    first, again, other = (make_dm(folders, seed=s, val_size=0.25) for s in (1, 1, 2))
    for dm in (first, again, other):
        dm.setup("fit")
    assert len(first.val_set) == 6
    assert first.val_set.indices == again.val_set.indices != other.val_set.indices
    assert not set(first.train_set.indices) & set(first.val_set.indices)
    assert any(
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(first.train_set.dataset.transform)
    )
    assert not any(
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(first.val_set.dataset.transform)
    )


def test_separate_val_and_test_folders(folders):
    dm = make_dm(folders, val_root=str(folders / "val"), test_root=str(folders / "test"), augment=False)
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (24, 6, 9)
    assert dm.val_set.targets == [0, 0, 1, 1, 2, 2]
    assert not any(
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(dm.train_set.dataset.transform)
    )


def test_test_without_a_test_root_is_a_clear_error(folders):
    with pytest.raises(UserInputError, match="data.test_root is not set"):
        make_dm(folders).setup("test")


def test_other_class_folders_are_a_clear_error(folders):
    with pytest.raises(UserInputError, match=r"data.val_root: the class folders of .*'horse'.* differ"):
        make_dm(folders, val_root=str(folders / "other_classes"))


def test_folders_without_class_sub_folders_or_images_are_clear_errors(tmp_path):
    with pytest.raises(UserInputError, match="data.root: folder .*missing not found"):
        ImageFolderDataModule(root=str(tmp_path / "missing"))
    with pytest.raises(UserInputError, match="data.root: no class sub-folders in"):
        ImageFolderDataModule(root=str(tmp_path))
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(UserInputError, match="data.root: no image files in the class folders 'empty_class'"):
        ImageFolderDataModule(root=str(tmp_path), num_workers=0)


def test_cli_links_the_folder_facts_into_the_model(folders, overlay):
    args = overlay(
        f"""
data:
  class_path: src.data.ImageFolderDataModule
  init_args:
    root: {folders / "train"}
    channels: 3
    image_size: [16, 20]
    num_workers: 0
"""
    )
    config = ["--config", str(REPO / "configs" / "fashion_mnist.yaml")]
    cli = cli_main([*config, *args, "--trainer.accelerator=cpu"], run=False)
    hparams = cli.model.hparams
    assert hparams.class_names == CLASSES and hparams.num_classes == 3
    assert hparams.in_channels == 3 and hparams.image_size == (16, 20)


def test_test_folder_labels_follow_the_sorted_class_folders(folders):
    dm = make_dm(folders, test_root=str(folders / "test"))
    dm.setup("test")
    assert dm.test_set.targets == [0] * 3 + [1] * 3 + [2] * 3
