"""Imbalanced classes: k-fold splits, class-weighted loss, class-balanced sampling, macro metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data import CSVImageDataModule
from src.data.samplers import ClassBalancedSampler
from src.data.splits import fold_split
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO, run_cli_main
from tests.helpers.files import write_csv

CLASSES = ("common", "rare")


def write_images(root: Path, counts: tuple[int, int], seed: int) -> list[tuple[str, str]]:
    """8x8 grayscale PNGs whose brightness overlaps between the classes (common ~ 100, rare ~ 125)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, (name, n) in enumerate(zip(CLASSES, counts, strict=True)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            level = 100 + 25 * label + rng.normal(0, 14)
            pixels = np.clip(level + rng.normal(0, 20, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{seed}_{k}.png")
            rows.append((f"{name}/{seed}_{k}.png", name))
    return rows


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory) -> Path:
    """A 10:1 training list (300 common, 30 rare images) and a balanced test list (60 + 60)."""
    root = tmp_path_factory.mktemp("imbalanced")
    write_csv(root / "train.csv", write_images(root / "images", (300, 30), seed=0))
    write_csv(root / "test.csv", write_images(root / "images", (60, 60), seed=1))
    return root


def fit(root: Path, out: Path, *options: str):
    """Train a small MLP on the imbalanced list; the CLI object after the test of the best checkpoint."""
    args = ["fit", "--config", str(REPO / "configs/csv_images.yaml"), "--data.img_dir", str(root / "images")]
    args += ["--data.annotations_file", str(root / "train.csv"), "--data.test_annotations_file"]
    args += [str(root / "test.csv"), "--data.channels=1", "--data.image_size=[8,8]", "--data.mean=[0.45]"]
    args += ["--data.std=[0.1]", "--data.crop_padding=0", "--data.augment=false", "--data.num_workers=0"]
    args += [
        "--data.batch_size=32",
        "--data.val_size=0.2",
        "--data.cache=memory",
        "--model.backbone=src.models.components.MLP",
    ]
    args += ["--model.backbone.init_args.hidden=16", "--trainer.max_epochs=6", "--trainer.logger=false"]
    args += [
        "--model.scheduler=null",
        f"--trainer.default_root_dir={out}",
        "--trainer.enable_progress_bar=false",
    ]
    args += ["--trainer.enable_model_summary=false", "--seed_everything=0", *options]
    return cli_main(args)


def test_weighted_loss_and_balanced_sampling_raise_the_rare_class_recall(imbalanced, tmp_path):
    recall = {}
    for name, options in {
        "plain": [],
        "weighted": ["--model.init_args.class_weights=auto"],
        "balanced": ["--data.sampler=balanced"],
    }.items():
        cli = fit(imbalanced, tmp_path / name, *options)
        metrics = cli.trainer.callback_metrics
        recall[name] = metrics["test/recall_rare"].item()
        assert metrics["test/acc_macro"].item() == pytest.approx(
            (metrics["test/recall_rare"].item() + metrics["test/recall_common"].item()) / 2, abs=1e-6
        )
    print(recall)
    assert recall["weighted"] > recall["plain"] + 0.2
    assert recall["balanced"] > recall["plain"] + 0.2


def test_folds_cover_the_training_data_once_each_stratified(imbalanced):
    folds = []
    for fold in range(3):
        dm = CSVImageDataModule(
            str(imbalanced / "train.csv"),
            img_dir=str(imbalanced / "images"),
            num_folds=3,
            fold=fold,
            cache="none",
        )
        dm.setup("fit")
        assert not set(dm.train_set.indices) & set(dm.val_set.indices)
        assert len(dm.train_set) + len(dm.val_set) == 330
        labels = [dm.val_set.dataset.targets[i] for i in dm.val_set.indices]
        assert labels.count(1) == 10 and labels.count(0) == 100  # each class in proportion
        folds.append(set(dm.val_set.indices))
    assert set().union(*folds) == set(range(330)) and sum(map(len, folds)) == 330
    # The cached path makes the same folds.
    cached = CSVImageDataModule(
        str(imbalanced / "train.csv"), img_dir=str(imbalanced / "images"), num_folds=3, fold=2, cache="memory"
    )
    cached.setup("fit")
    assert set(cached.val_set.indices) == folds[2]
    # Without labels (e.g. `stratify: false`) the folds are random, still a partition.
    random_folds = [set(fold_split(10, 3, k, seed=0)[1]) for k in range(3)]
    assert set().union(*random_folds) == set(range(10)) and sum(map(len, random_folds)) == 10


def test_balanced_sampler_shards_one_draw_across_processes():
    targets = [0] * 90 + [1] * 11
    single = list(ClassBalancedSampler(targets, seed=3))
    shards = [ClassBalancedSampler(targets, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    first, second = (list(s) for s in shards)
    assert len(first) == len(second) == 51
    assert first == list(shards[0].__iter__())  # the same epoch draws the same
    merged = [i for pair in zip(first, second, strict=True) for i in pair]
    generator = torch.Generator().manual_seed(3)
    assert merged == torch.multinomial(shards[0].weights, 102, True, generator=generator).tolist()
    shards[0].set_epoch(1)
    assert list(shards[0]) != first  # a new draw each epoch
    rare = sum(targets[i] for i in single) / len(single)
    assert 0.35 < rare < 0.65  # 11 of 101 images, drawn about half of the time


def test_cross_validate_runs_every_fold_and_averages(imbalanced, tmp_path, capsys):
    from src.cross_validate import main

    output = tmp_path / "folds.csv"
    main(
        [
            "--folds=2",
            "--config",
            str(REPO / "configs/csv_images.yaml"),
            f"--data.annotations_file={imbalanced / 'train.csv'}",
            f"--data.img_dir={imbalanced / 'images'}",
            "--data.image_size=[8,8]",
            "--data.cache=memory",
            "--model.backbone=src.models.components.MLP",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'logs'}",
            f"--output={output}",
        ]
    )
    printed = capsys.readouterr().out
    lines = output.read_text().splitlines()
    assert lines[0] == "fold,val/acc,run" and [line[0] for line in lines[1:]] == ["0", "1"]
    scores = [float(line.split(",")[1]) for line in lines[1:]]
    mean = printed.split("mean")[1].split()[0]
    assert mean == f"{sum(scores) / 2:.4f}"
    assert len({line.split(",")[2] for line in lines[1:]}) == 2  # a run folder per fold


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--data.num_folds=1"], "data.num_folds: needs 2 <= num_folds <= 330 (training samples), got 1"),
        (["--data.num_folds=3", "--data.fold=3"], "data.fold: needs 0 <= fold < num_folds (3), got 3"),
        (
            ["--data.num_folds=3", "--data.val_annotations_file=TRAIN"],
            "data.num_folds: the folds are split off the training data; leave out the separate validation",
        ),
        (
            ["--model.init_args.class_weights=[1,2,3]"],
            "model.class_weights: needs one weight per class (2), got 3",
        ),
        (
            ["--model.init_args.class_weights=[1,-2]"],
            "model.class_weights: weights must be >= 0, got [1.0, -2.0]",
        ),
        (
            ["--data.sampler=weighted"],
            "data.init_args.sampler: expected one of random, balanced, got 'weighted'",
        ),
        (["--monitor=val/loss"], "monitor"),
    ],
)
def test_bad_imbalance_options_are_one_line(imbalanced, tmp_path, monkeypatch, capsys, options, message):
    options = [o.replace("TRAIN", str(imbalanced / "train.csv")) for o in options]
    args = ["fit", "--config", str(REPO / "configs/csv_images.yaml"), "--data.cache=none"]
    args += [f"--data.annotations_file={imbalanced / 'train.csv'}", f"--data.img_dir={imbalanced / 'images'}"]
    args += [f"--trainer.default_root_dir={tmp_path / 'logs'}", *options]
    status, output = run_cli_main(monkeypatch, capsys, args)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert status != 0 and len(errors) == 1 and message in errors[0], output[-1500:]
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


def test_class_counts_follow_the_training_split(imbalanced):
    dm = CSVImageDataModule(
        str(imbalanced / "train.csv"), img_dir=str(imbalanced / "images"), val_size=0.1, cache="memory"
    )
    dm.setup("fit")
    assert dm.class_counts().tolist() == [270, 27]
    assert torch.equal(
        dm.class_counts(), torch.bincount(torch.tensor([dm.train_set[i][1] for i in range(297)]))
    )
