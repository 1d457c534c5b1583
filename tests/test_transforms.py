"""Transforms: per-dataset defaults, and whole pipelines given in a YAML config by `class_path`."""

from __future__ import annotations

import pytest
import torch
import yaml
from torchvision.transforms import v2

from src.data import FashionMNISTDataModule
from src.lightning_cli import cli_main
from tests.helpers.files import flatten_transforms

TRAIN_TRANSFORM = """
data:
  init_args:
    train_transform:
      class_path: torchvision.transforms.v2.Compose
      init_args:
        transforms:
          - class_path: torchvision.transforms.v2.RandomCrop
            init_args: {size: 28, padding: 4}
          - class_path: torchvision.transforms.v2.ToImage
          - class_path: torchvision.transforms.v2.ToDtype
            init_args: {dtype: torch.float32, scale: true}
          - class_path: torchvision.transforms.v2.Normalize
            init_args: {mean: [0.286], std: [0.353]}
"""

EVAL_TRANSFORM = """
data:
  init_args:
    eval_transform:
      class_path: torchvision.transforms.v2.Compose
      init_args:
        transforms:
          - class_path: torchvision.transforms.v2.ToImage
          - class_path: torchvision.transforms.v2.ToDtype
            init_args: {dtype: torch.float32, scale: true}
          - class_path: torchvision.transforms.v2.Normalize
            init_args: {mean: [0.5], std: [0.25]}
"""


def _types(transform) -> list[type]:
    return [type(t) for t in flatten_transforms(transform)]


def test_defaults_augment_training_only(fashion_mnist_root):
    dm = FashionMNISTDataModule(data_dir=str(fashion_mnist_root))
    assert v2.RandomHorizontalFlip in _types(dm.train_transforms())
    assert v2.RandomHorizontalFlip not in _types(dm.eval_transforms())
    assert _types(dm.eval_transforms()) == [v2.ToImage, v2.ToDtype, v2.Normalize]
    no_augment = FashionMNISTDataModule(data_dir=str(fashion_mnist_root), augment=False)
    assert _types(no_augment.train_transforms()) == _types(no_augment.eval_transforms())


def test_yaml_train_transform_replaces_the_training_pipeline_only(fast_args, overlay):
    cli = cli_main([*fast_args, *overlay(TRAIN_TRANSFORM)], run=False)
    dm = cli.datamodule
    assert isinstance(dm.train_transform, v2.Compose)
    crop = dm.train_transform.transforms[0]
    assert isinstance(crop, v2.RandomCrop) and crop.size == (28, 28) and crop.padding == [4, 4, 4, 4]
    assert dm.train_transform.transforms[2].dtype == torch.float32
    dm.setup("fit")
    dm.setup("test")
    assert dm.train_set.dataset.transform is dm.train_transform
    # Without an eval_transform, evaluation keeps the dataset's default (never the augmenting one).
    for transform in (dm.val_set.dataset.transform, dm.test_set.transform):
        assert _types(transform) == [v2.ToImage, v2.ToDtype, v2.Normalize]
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32


def test_yaml_eval_transform_is_used_for_validation_and_test(fast_args, overlay):
    cli = cli_main([*fast_args, *overlay(EVAL_TRANSFORM)], run=False)
    dm = cli.datamodule
    dm.setup("fit")
    dm.setup("test")
    assert dm.val_set.dataset.transform is dm.eval_transform is dm.test_set.transform
    assert dm.eval_transform.transforms[-1].std == [0.25]
    # The default training pipeline: its augmentations, then the (configured) evaluation transforms.
    train = _types(dm.train_set.dataset.transform)
    assert v2.RandomHorizontalFlip in train and train[-3:] == [v2.ToImage, v2.ToDtype, v2.Normalize]
    assert dm.eval_transform in list(dm.train_set.dataset.transform.transforms)


@pytest.mark.parametrize("name", ["train_transform", "eval_transform"])
def test_a_function_by_import_path_is_a_transform_too(fast_args, name):
    cli = cli_main([*fast_args, f"--data.{name}=torchvision.transforms.functional.pil_to_tensor"], run=False)
    from torchvision.transforms.functional import pil_to_tensor

    assert getattr(cli.datamodule, name) is pil_to_tensor


def test_fit_with_yaml_transforms_saves_them_in_the_run_config(fast_args, overlay, tmp_path):
    args = [*fast_args, *overlay(TRAIN_TRANSFORM), *overlay(EVAL_TRANSFORM, name="eval.yaml")]
    cli = cli_main(["fit", *args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    assert cli.trainer.state.finished
    saved = tmp_path / "fashion_mnist" / "version_0" / "config.yaml"
    data = yaml.safe_load(saved.read_text())["data"]
    transforms = data["init_args"]["train_transform"]["init_args"]["transforms"]
    assert transforms[0]["init_args"]["padding"] == 4
    assert data["init_args"]["eval_transform"]["init_args"]["transforms"][-1]["init_args"]["std"] == [0.25]
    # The saved data section builds the same datamodule again.
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    again = cli_main([*fast_args, "--data", str(tmp_path / "data.yaml")], run=False).datamodule
    assert isinstance(again.train_transform.transforms[0], v2.RandomCrop)
