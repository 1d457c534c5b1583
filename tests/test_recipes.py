"""The training recipe's parts: label smoothing and soft targets, MixUp/CutMix, augmentation policies on
both data paths, warm-up + schedule lengths from the trainer, lr scaling, EMA, top-5, summary.csv,
channels-last and test-time augmentation."""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from types import SimpleNamespace

import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR
from torchvision import tv_tensors
from torchvision.transforms import v2

from src.data import FashionMNISTDataModule
from src.data.augment import batch_augment, batch_mixer, recipe_augmentations
from src.export import main as export_main
from src.lightning_cli import cli_main
from src.models import ImageClassifier
from src.models.components import ConvNet, LeNet
from src.models.schedules import CosineAnnealingLR, build_schedule, scale_lr, warmup_length
from src.predictions import predict_files
from tests.helpers.cli import REPO, error_lines, run_cli_main

STRONG = ["--config", str(REPO / "configs" / "recipe" / "strong.yaml")]
SHORT = ["--trainer.max_epochs=2", "--trainer.limit_val_batches=2"]


def run_dir(root: Path) -> Path:
    return next(root.rglob("version_0"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --- data: policies, erasing, mixing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [v2.TrivialAugmentWide(), v2.RandAugment(), v2.AutoAugment(), v2.RandomErasing(p=0.5, value=0)],
    ids=lambda t: type(t).__name__,
)
def test_batched_policies_draw_exactly_what_the_per_sample_path_draws(transform):
    """Each image of a batch gets its own draw, from the same random stream as the per-sample path."""
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    torch.manual_seed(0)
    batched = batch_augment(images, [transform])
    torch.manual_seed(0)
    singles = torch.stack([transform(tv_tensors.Image(image)) for image in images])
    assert torch.equal(batched, singles)
    # Per image, not per batch: copies of one image come out different.
    copies = batch_augment(images[:1].repeat(32, 1, 1, 1), [transform])
    assert len({c.numpy().tobytes() for c in copies}) > 4


def test_policy_and_erasing_are_on_both_data_paths(fashion_mnist_root):
    options = {"augment_policy": "trivialaugment", "random_erasing": 0.5, "val_size": 80, "download": False}
    fast = FashionMNISTDataModule(data_dir=str(fashion_mnist_root), **options)
    slow = FashionMNISTDataModule(data_dir=str(fashion_mnist_root), in_memory=False, **options)
    names = [type(t).__name__ for t in fast.training_augmentations()]
    assert names == ["RandomHorizontalFlip", "TrivialAugmentWide", "RandomErasing"]
    pipeline = [type(t).__name__ for t in slow.train_transforms().transforms]
    assert pipeline[1:4] == names
    # The fast path applies them: more than flips happen, and the evaluation batches stay untouched.
    fast.setup("fit")
    x, _ = next(iter(fast.val_dataloader()))
    plain = fast.transform_batch(x, train=False)
    torch.manual_seed(0)
    out = fast.transform_batch(x, train=True)
    mirrored = fast.transform_batch(x.flip(-1), train=False)
    only_flipped = ((out == plain) | (out == mirrored)).flatten(1).all(1)
    assert only_flipped.float().mean() < 0.5
    assert recipe_augmentations() == []


def test_mixup_cutmix_give_soft_targets_for_training_batches_only(fashion_mnist_root):
    dm = FashionMNISTDataModule(
        data_dir=str(fashion_mnist_root), val_size=80, batch_size=32, mixup_alpha=0.2, cutmix_alpha=1.0
    )
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    dm.trainer = SimpleNamespace(training=True)  # type: ignore[assignment]
    images, targets = dm.on_after_batch_transfer([x, y], 0)
    assert images.dtype == torch.float32 and targets.shape == (32, 10)
    assert torch.allclose(targets.sum(1), torch.ones(32))
    assert (targets > 0).sum(1).max() == 2  # two classes mixed (unless both images had one class)
    dm.trainer = SimpleNamespace(training=False)  # type: ignore[assignment]
    _, labels = dm.on_after_batch_transfer([x, y], 0)
    assert torch.equal(labels, y)
    assert batch_mixer(0.0, 0.0, 10) is None
    assert isinstance(batch_mixer(0.2, 0.0, 10), v2.MixUp)
    assert isinstance(batch_mixer(0.2, 1.0, 10), v2.RandomChoice)


def test_soft_targets_and_label_smoothing_in_the_loss_and_accuracy():
    model = ImageClassifier(LeNet(num_classes=10), num_classes=10, label_smoothing=0.1)
    x, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    soft = torch.nn.functional.one_hot(labels, 10).float() * 0.7 + 0.03
    loss, logits = model._shared_step((x, soft), model.train_loss, model.train_acc, "train")
    expected = nn.functional.cross_entropy(logits, soft, label_smoothing=0.1)
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, nn.functional.cross_entropy(logits, soft))
    assert model.train_acc.compute() == (logits.argmax(1) == labels).float().mean()


# --- schedules --------------------------------------------------------------------------------------------


def lrs(scheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_warmup_then_cosine_over_the_rest_of_the_run():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    factory = functools.partial(CosineAnnealingLR, eta_min=0.0)  # what jsonargparse gives, T_max unset
    scheduler = build_schedule(optimizer, factory, total=100, warmup=10, start_factor=0.1)
    values = lrs(scheduler, 100)
    assert values[0] == pytest.approx(0.1) and values[10] == pytest.approx(1.0)
    assert values[5] == pytest.approx(0.1 + 0.9 * 5 / 10)
    assert values[55] == pytest.approx(0.5)  # half-way through the 90 cosine steps
    assert values[-1] < 0.001 and values == sorted(values[:11]) + values[11:]


def test_one_cycle_total_filled_in_and_constant_lr_after_warmup():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    factory = functools.partial(OneCycleLR, max_lr=1.0)
    scheduler = build_schedule(optimizer, factory, total=50, warmup=0)
    assert scheduler.total_steps == 50
    lrs(scheduler, 50)  # torch raises when stepped past total_steps
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    assert lrs(build_schedule(optimizer, None, total=20, warmup=4, start_factor=0.5), 8)[3:] == [
        pytest.approx(0.875),
        1.0,
        1.0,
        1.0,
        1.0,
    ]


def test_warmup_lengths_and_their_errors():
    assert warmup_length(0.5, 0, "step", 100) == 50
    assert warmup_length(0, 7, "step", 100) == 7
    with pytest.raises(Exception, match="not both"):
        warmup_length(1, 5, "step", 10)
    with pytest.raises(Exception, match="whole number of epochs"):
        warmup_length(0.5, 0, "epoch", 10)
    with pytest.raises(Exception, match="the length of an epoch is unknown"):
        warmup_length(1, 0, "step", float("inf"))  # trainer.max_steps without max_epochs
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(Exception, match="must be shorter than the run"):
        build_schedule(optimizer, None, total=10, warmup=10)


def test_lr_scaled_by_the_global_batch():
    optimizer = torch.optim.SGD(
        [{"params": [nn.Parameter(torch.zeros(1))]}, {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.5}],
        lr=0.1,
    )
    assert scale_lr(optimizer, 512, 256) == 2.0
    assert [g["lr"] for g in optimizer.param_groups] == [0.2, 1.0]


def test_lr_batch_size_and_warmup_from_the_cli(fast_args, monkeypatch, capsys):
    args = ["fit", *fast_args, "--model.lr_batch_size=16", "--model.warmup_steps=3", "--test_after_fit=false"]
    args += ["--model.scheduler=null", "--model.scheduler_interval=step", "--trainer.max_epochs=1"]
    args += ["--trainer.limit_val_batches=1"]
    cli = cli_main(args)
    # batch 32 / 16 = 2 x the config's 0.002; the head's group at 0.5 x; warm-up done after 3 of 8 steps.
    groups = {g["name"]: g["lr"] for g in cli.trainer.optimizers[0].param_groups}
    assert groups["head"] == pytest.approx(0.002) and groups["default"] == pytest.approx(0.004)
    status, output = run_cli_main(monkeypatch, capsys, [*args, "--model.warmup_steps=100"])
    assert status == 1
    assert error_lines(output) == [
        "error: model.warmup_epochs: the warm-up (100 scheduler steps) must be shorter than the run "
        "(8 scheduler steps)"
    ]


# --- the whole recipe through the CLI ----------------------------------------------------------------------


def test_strong_recipe_trains_with_ema_top5_and_summary_csv(fast_args, tmp_path):
    cli = cli_main(["fit", *fast_args, *STRONG, *SHORT])
    hp = cli.model.hparams
    assert (hp.label_smoothing, hp.warmup_epochs, cli.datamodule.cutmix_alpha) == (0.1, 1, 1.0)
    rows = read_csv(run_dir(tmp_path) / "summary.csv")
    test_row = rows.pop()  # the test after fit, last
    assert test_row["epoch"] == "test" and float(test_row["test/acc"]) == pytest.approx(
        cli.trainer.callback_metrics["test/acc"].item()
    )
    assert (
        all(test_row[f"test/{m}_Bag"] for m in ("precision", "recall", "f1")) and test_row["test/acc_macro"]
    )
    assert [r["epoch"] for r in rows] == ["0", "1"] and [r["step"] for r in rows] == ["8", "16"]
    for column in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_top5", "lr-default"):
        assert all(r[column] for r in rows), column
    assert float(rows[0]["val/acc_top5"]) >= float(rows[0]["val/acc"])
    # 8 warm-up steps (1 epoch) to the full lr, then a cosine to 0 at step 16.
    assert float(rows[0]["lr-default"]) == pytest.approx(0.002) and float(rows[1]["lr-default"]) < 1e-9

    # The best checkpoint holds the EMA weights as its state_dict, the training weights beside them.
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    content = torch.load(best, map_location="cpu", weights_only=True)
    key = "backbone.classifier.4.weight"
    assert not torch.equal(content["state_dict"][key], content["current_model_state"][key])
    model = ImageClassifier.from_checkpoint(best)
    assert torch.equal(model.state_dict()[key], content["state_dict"][key])
    # fit's final test (callback still attached) used the EMA weights: a test without the callback agrees.
    fit_test = cli.trainer.callback_metrics["test/loss"].item()
    again = cli_main(["test", *fast_args, f"--ckpt_path={best}"])
    assert again.trainer.callback_metrics["test/loss"].item() == pytest.approx(fit_test, abs=1e-6)


def test_top5_only_with_more_than_5_classes():
    assert "val_acc_top5" in ImageClassifier(LeNet(num_classes=10), num_classes=10).extra_metrics
    assert set(ImageClassifier(LeNet(num_classes=5), num_classes=5).extra_metrics) == {
        "val_acc_macro",
        "test_acc_macro",
    }


def test_channels_last_network_computes_the_same(fast_args):
    cli = cli_main(["fit", *fast_args, "--model.channels_last=true", "--trainer.fast_dev_run=true"])
    weight = cli.model.backbone.features[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28)
    plain = ConvNet(widths=[32, 64], dropout=0.25)
    plain.load_state_dict(cli.model.backbone.state_dict())
    with torch.no_grad():
        assert torch.allclose(cli.model.eval()(x), plain.eval()(x), atol=1e-5)


# --- test-time augmentation ---------------------------------------------------------------------------------


def test_tta_averages_the_mirror_images_probabilities(trained):
    model = ImageClassifier.from_checkpoint(trained.ckpt)
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        plain = model.probabilities(x)
        model.tta = True
        averaged = model.probabilities(x)
        expected = (model(x).softmax(-1) + model(x.flip(-1)).softmax(-1)) / 2
    assert torch.allclose(averaged, expected, atol=1e-6) and not torch.allclose(averaged, plain)
    files = sorted(Path(trained.test_dir).glob("*.png"))[:4]
    on = predict_files(trained.ckpt, files, top_k=3, tta=True)
    off = predict_files(trained.ckpt, files, top_k=3)
    assert [r["probs"] for r in on] != [r["probs"] for r in off]


def test_export_with_tta_puts_the_flip_averaging_in_the_graph(trained, tmp_path, capsys):
    export_main([trained.ckpt, "--output", str(tmp_path / "m.onnx"), "--tta"])
    assert "Wrote" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["tta"] == "true"
    model = ImageClassifier.from_checkpoint(trained.ckpt, tta=True)
    images = torch.rand(3, 1, 28, 28)
    (probs,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model.probabilities(model.normalize(images))
    assert torch.allclose(torch.from_numpy(probs), expected, atol=1e-4)


def test_fashion_mnist_crop_padding_adds_a_random_crop(fashion_mnist_root):
    dm = FashionMNISTDataModule(data_dir=str(fashion_mnist_root), crop_padding=2, download=False)
    crop, flip = dm.augmentations()
    assert isinstance(crop, v2.RandomCrop) and crop.padding == [2, 2, 2, 2] and tuple(crop.size) == (28, 28)
    assert isinstance(flip, v2.RandomHorizontalFlip)
    assert len(FashionMNISTDataModule(data_dir=str(fashion_mnist_root)).augmentations()) == 1
