"""The in-memory data path (uint8 tensors, batched transforms on the device) against the per-sample one."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from lightning import Callback, Trainer
from torchvision import tv_tensors
from torchvision.transforms import v2

from src.data import CIFAR10DataModule, FashionMNISTDataModule
from src.data.augment import batch_augment
from src.lightning_cli import cli_main
from src.models import ImageClassifier
from src.models.components import LeNet
from tests.helpers.cli import REPO
from tests.helpers.files import make_cifar10, write_idx_images, write_idx_labels


@pytest.fixture(autouse=True)
def _no_md5_check(monkeypatch):
    """Generated CIFAR-10 files cannot have the official MD5 sums: check only that they exist."""
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath)
    )


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory):
    """A tiny CIFAR-10: 5 training batches of 40 images (200) and a test batch of 40."""
    return make_cifar10(tmp_path_factory.mktemp("cifar"), n_per_batch=40, n_test=40)


def make_dm(kind: str, root, **kwargs):
    """A FashionMNIST (`fmnist`) or CIFAR-10 (`cifar`) datamodule on the generated files."""
    cls, val_size = {"fmnist": (FashionMNISTDataModule, 80), "cifar": (CIFAR10DataModule, 50)}[kind]
    kwargs = {"val_size": val_size, "batch_size": 16, "num_workers": 0, "download": False, **kwargs}
    return cls(data_dir=str(root), **kwargs)


@pytest.fixture
def roots(fashion_mnist_root, cifar10_root):
    return {"fmnist": fashion_mnist_root, "cifar": cifar10_root}


def all_batches(loader):
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("kind", ["fmnist", "cifar"])
@pytest.mark.parametrize("train_subset", [None, 0.5])
def test_same_split_indices_as_the_per_sample_path(kind, train_subset, roots):
    fast = make_dm(kind, roots[kind], train_subset=train_subset)
    slow = make_dm(kind, roots[kind], train_subset=train_subset, in_memory=False)
    for dm in (fast, slow):
        dm.setup("fit")
    assert fast.train_set.indices == slow.train_set.indices
    assert fast.val_set.indices == slow.val_set.indices
    assert not set(fast.train_set.indices) & set(fast.val_set.indices)


@pytest.mark.parametrize("kind", ["fmnist", "cifar"])
def test_eval_batches_are_identical_to_the_per_sample_path(kind, roots):
    fast, slow = make_dm(kind, roots[kind]), make_dm(kind, roots[kind], in_memory=False)
    for dm in (fast, slow):
        dm.setup("fit")
        dm.setup("test")
    for stage in ("val", "test"):
        raw, labels = all_batches(getattr(fast, f"{stage}_dataloader")())
        expected, expected_labels = all_batches(getattr(slow, f"{stage}_dataloader")())
        assert raw.dtype == torch.uint8 and raw.shape == expected.shape
        assert labels.dtype == torch.int64 and torch.equal(labels, expected_labels)
        # Outside a trainer (no `trainer.training`), the hook only normalises.
        images, out_labels = fast.on_after_batch_transfer([raw, labels], 0)
        assert images.dtype == torch.float32
        torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
        assert out_labels is labels


@pytest.mark.parametrize("kind", ["fmnist", "cifar"])
def test_batch_shapes_and_dtypes(kind, roots):
    dm = make_dm(kind, roots[kind])
    dm.setup("fit")
    channels, size = dm.in_channels, dm.image_size
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, channels, *size) and x.dtype == torch.uint8
    assert y.shape == (16,) and y.dtype == torch.int64
    for train in (True, False):
        out = dm.transform_batch(x, train=train)
        assert out.shape == (16, channels, *size) and out.dtype == torch.float32
        assert out.min() < 0  # normalised


def test_compute_mean_std_is_the_same_with_and_without_in_memory(fashion_mnist_root):
    fast = make_dm("fmnist", fashion_mnist_root)
    slow = make_dm("fmnist", fashion_mnist_root, in_memory=False)
    assert fast.compute_mean_std() == slow.compute_mean_std()


def position_images(n: int, size: int = 32) -> torch.Tensor:
    """uint8 images whose pixels tell where they came from: channel 0 = row + 1, channel 1 = column + 1."""
    rows = torch.arange(1, size + 1).view(size, 1).expand(size, size)
    cols = torch.arange(1, size + 1).view(1, size).expand(size, size)
    image = torch.stack([rows, cols, torch.zeros_like(rows)]).to(torch.uint8)
    return image.expand(n, 3, size, size).clone()


def crop_and_flip(images: torch.Tensor) -> tuple[list[tuple[int, int]], list[bool]]:
    """The (top, left) crop offset (in the 4-pixel padded image) and flip of each augmented image.

    Read from the centre pixels, which come from the image itself for every offset in [0, 8].
    """
    rows, cols = images[:, 0, 16, 16].long(), images[:, 1, 16, 16:18].long()
    flipped = cols[:, 1] < cols[:, 0]
    # Unflipped, output column 16 is padded column 16 + left (image column 12 + left, stored + 1).
    left = torch.where(flipped, cols[:, 0] - 12, cols[:, 0] - 13)
    top = rows - 13
    return list(zip(top.tolist(), left.tolist(), strict=True)), flipped.tolist()


def frequencies(values: list, keys: list) -> np.ndarray:
    return np.array([values.count(k) for k in keys]) / len(values)


def test_cifar_crop_and_flip_match_the_per_sample_distributions():
    augmentations = CIFAR10DataModule().augmentations()
    n = 4000
    torch.manual_seed(0)
    batched = batch_augment(position_images(n), augmentations)
    per_sample = v2.Compose(augmentations)
    one = tv_tensors.Image(position_images(1)[0])
    singles = torch.stack([per_sample(one) for _ in range(n)])

    offsets = [(top, left) for top in range(9) for left in range(9)]
    fast_offsets, fast_flips = crop_and_flip(batched)
    slow_offsets, slow_flips = crop_and_flip(singles)
    assert set(fast_offsets) == set(slow_offsets) == set(offsets)  # every offset in [0, 8]^2, no other
    fast_freq, slow_freq = frequencies(fast_offsets, offsets), frequencies(slow_offsets, offsets)
    # 81 offsets, uniform: about 49 draws each; 3.5 standard deviations is 0.0054.
    assert np.abs(fast_freq - 1 / 81).max() < 0.0054
    assert np.abs(slow_freq - 1 / 81).max() < 0.0054
    assert abs(np.mean(fast_flips) - 0.5) < 0.03 and abs(np.mean(slow_flips) - 0.5) < 0.03
    # Each image draws its own parameters: a batch of 16 has several offsets and both flips.
    first_offsets, first_flips = crop_and_flip(batched[:16])
    assert len(set(first_offsets)) > 1 and len(set(first_flips)) == 2
    # Padding is zeros, as in v2.RandomCrop's default fill: the top row of an image cropped at top 0 is
    # padding, at top 4 (no vertical shift) it is the image's first row.
    tops = torch.tensor([top for top, _ in fast_offsets])
    assert batched[tops == 0][:, :, 0].eq(0).all()
    assert batched[tops == 4][:, 0, 0, 16].eq(1).all()


def test_fashion_mnist_augmentation_is_a_flip_only(fashion_mnist_root):
    dm = make_dm("fmnist", fashion_mnist_root)
    dm.setup("fit")
    x, _ = next(iter(dm.val_dataloader()))
    torch.manual_seed(0)
    flips = []
    for _ in range(100):
        out = dm.transform_batch(x, train=True)
        plain, mirrored = dm.transform_batch(x, train=False), dm.transform_batch(x.flip(-1), train=False)
        same = (out == plain).flatten(1).all(1)
        flipped = (out == mirrored).flatten(1).all(1)
        assert (same | flipped).all()  # nothing but a flip happened to any image
        flips += flipped.tolist()
    assert abs(np.mean(flips) - 0.5) < 0.05


@pytest.mark.parametrize("kind", ["fmnist", "cifar"])
def test_augmented_batch_statistics_match_the_per_sample_path(kind, roots):
    """Mean and std per channel of many augmented epochs agree between the two paths."""
    stats = {}
    for in_memory in (True, False):
        torch.manual_seed(0)
        dm = make_dm(kind, roots[kind], in_memory=in_memory, batch_size=50)
        dm.setup("fit")
        batches = []
        for _ in range(15):
            for x, _ in dm.train_dataloader():
                batches.append(dm.transform_batch(x, train=True) if in_memory else x)
        images = torch.cat(batches).transpose(0, 1).flatten(1).double()
        stats[in_memory] = images.mean(1), images.std(1)
    (fast_mean, fast_std), (slow_mean, slow_std) = stats[True], stats[False]
    torch.testing.assert_close(fast_mean, slow_mean, rtol=0, atol=0.01)
    torch.testing.assert_close(fast_std, slow_std, rtol=0, atol=0.01)


class RecordBatches(Callback):
    """Keep the batches (after transfer and the datamodule's hook) each loop gives the model."""

    def __init__(self) -> None:
        self.batches = {"train": [], "val": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches["train"].append(batch[0].clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.batches["val"].append(batch[0].clone())


def test_validation_during_fit_is_never_augmented_and_training_is(fashion_mnist_root):
    dm = make_dm("fmnist", fashion_mnist_root, batch_size=40)
    recorder = RecordBatches()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=3,
        num_sanity_val_steps=2,
        callbacks=[recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(ImageClassifier(LeNet(num_classes=10), num_classes=10), datamodule=dm)

    slow = make_dm("fmnist", fashion_mnist_root, batch_size=40, in_memory=False)
    slow.setup("fit")
    expected = list(slow.val_dataloader())
    # 2 sanity-check batches, then the 2 batches of the 80 validation images after each of 2 epochs.
    assert len(recorder.batches["val"]) == 6
    for got, (want, _) in zip(recorder.batches["val"], expected * 3, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)

    # Every training image is an unaugmented training image or its mirror image, and both occur.
    raw = torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))])
    plain = dm.transform_batch(raw, train=False).flatten(1)
    mirrored = dm.transform_batch(raw.flip(-1), train=False).flatten(1)
    train = torch.cat(recorder.batches["train"]).flatten(1)
    assert len(train) == 6 * 40
    exact = "donot_use_mm_for_euclid_dist"
    is_plain = (torch.cdist(train, plain, compute_mode=exact).min(1).values < 1e-4).tolist()
    is_mirrored = (torch.cdist(train, mirrored, compute_mode=exact).min(1).values < 1e-4).tolist()
    assert all(p or m for p, m in zip(is_plain, is_mirrored, strict=True))
    assert not all(is_plain) and not all(is_mirrored)


@pytest.mark.parametrize("key", ["train_transform", "eval_transform"])
def test_user_transforms_use_the_per_sample_path(fashion_mnist_root, key, caplog):
    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    dm = make_dm("fmnist", fashion_mnist_root, **{key: transform})
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert f"data.{key} is set: using the per-sample data path" in caplog.text
    assert not dm.uses_tensors
    x, _ = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.min() >= 0  # the user's pipeline: scaled, not normalised
    assert dm.on_after_batch_transfer([x, None], 0)[0] is x  # float batches pass the hook unchanged


def test_predict_paths_images_pass_the_hook_unchanged(fashion_mnist_root, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(tmp_path / "a.png")
    dm = make_dm("fmnist", fashion_mnist_root, predict_paths=[str(tmp_path / "a.png")])
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert dm.on_after_batch_transfer(batch, 0) is batch
    expected = (200 / 255 - dm.mean[0]) / dm.std[0]
    torch.testing.assert_close(batch, torch.full((1, 1, 28, 28), expected), rtol=0, atol=1e-5)


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_cli_fit_fast_dev_run(fast_args, in_memory, capsys):
    cli = cli_main(["fit", *fast_args, f"--data.in_memory={in_memory}", "--trainer.fast_dev_run=true"])
    assert cli.datamodule.uses_tensors is (in_memory == "true")
    assert cli.trainer.global_step == 1  # one training batch, then validation and the test after fit
    assert 0 <= cli.trainer.callback_metrics["test/acc"] <= 1


RECORD_SHARDS = """
import json, sys
import torch
from lightning import Callback, Trainer, seed_everything
from src.data import FashionMNISTDataModule
from src.models import ImageClassifier
from src.models.components import LeNet

root, out = sys.argv[1], sys.argv[2]


class RecordIndices(Callback):
    # Each generated image stores its index in the training split in pixels (0, 0) and (0, 1).
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        dm = trainer.datamodule
        pixels = (batch[0][:, 0, 0, :2] * dm.std[0] + dm.mean[0]) * 255
        ids = pixels.round().long()
        self.seen += (ids[:, 0] * 256 + ids[:, 1]).tolist()


seed_everything(0)  # as the CLI does (seed_everything: 42): every process starts from the same seed
recorder = RecordIndices()
dm = FashionMNISTDataModule(data_dir=root, val_size=80, batch_size=20, num_workers=0, download=False,
                            augment=False)
trainer = Trainer(accelerator="cpu", strategy="ddp", devices=2, max_epochs=1, limit_val_batches=0,
                  num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
trainer.fit(ImageClassifier(LeNet(num_classes=10), num_classes=10), datamodule=dm)
with open(f"{out}/rank{trainer.global_rank}.json", "w") as f:
    json.dump(recorder.seen, f)
"""


def index_images(root, n_train: int = 320, n_test: int = 20):
    """A FashionMNIST whose training image i has i // 256 and i % 256 in its first two pixels."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((n_train, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(n_train) // 256, np.arange(n_train) % 256
    write_idx_images(raw / "train-images-idx3-ubyte", images)
    write_idx_labels(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx_images(raw / "t10k-images-idx3-ubyte", images[:n_test])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return root


def test_ddp_shards_are_disjoint_and_cover_the_training_split(tmp_path):
    root = index_images(tmp_path / "data")
    script = tmp_path / "record_shards.py"
    script.write_text(RECORD_SHARDS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), str(root), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())

    dm = FashionMNISTDataModule(data_dir=str(root), val_size=80, num_workers=0, download=False)
    dm.setup("fit")
    assert len(rank0) == len(rank1) == 120  # 240 training images, half each
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == sorted(dm.train_set.indices)
