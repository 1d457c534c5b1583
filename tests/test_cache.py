"""`data.cache` of the image-file datamodules: decode once, keep uint8 splits, augment on the device."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from src.data import CSVImageDataModule, ImageFolderDataModule, TensorImageDataset
from src.errors import UserInputError
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO, run_cli_main
from tests.helpers.files import make_image_folder, write_csv

CLASSES = ("cat", "dog", "frog")

# The validation and test lists reuse training images on purpose (what this warning points out).
pytestmark = pytest.mark.filterwarnings("ignore:.*also in the training CSV:UserWarning")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """18 PNG files of mixed sizes and modes in class folders, and train/val/test CSVs listing them."""
    root = tmp_path_factory.mktemp("photos")
    listed = make_image_folder(root / "images", CLASSES, n_per_class=6)
    write_csv(root / "train.csv", listed)
    write_csv(root / "val.csv", listed[::3])
    write_csv(root / "test.csv", listed[1::3])
    return root


def csv_dm(root, **kwargs) -> CSVImageDataModule:
    settings = {"img_dir": str(root / "images"), "image_size": (12, 10), "val_size": 6, "num_workers": 0}
    return CSVImageDataModule(str(root / "train.csv"), **(settings | kwargs))


def eval_batches(dm, stage: str = "fit") -> tuple[torch.Tensor, torch.Tensor]:
    """The whole validation (fit) or test set as the model receives it, through the datamodule's hooks."""
    dm.setup(stage)
    loader = dm.val_dataloader() if stage == "fit" else dm.test_dataloader()
    images, labels = zip(*(dm.on_after_batch_transfer(batch, 0) for batch in loader), strict=True)
    return torch.cat(images), torch.cat(labels)


@pytest.mark.parametrize("channels", [1, 3])
def test_cached_splits_give_the_same_tensors_as_decoding_every_epoch(photos, channels):
    kwargs = {"channels": channels, "test_annotations_file": str(photos / "test.csv")}
    cached, per_sample = csv_dm(photos, cache="memory", **kwargs), csv_dm(photos, cache="none", **kwargs)
    assert cached.uses_tensors and not per_sample.uses_tensors
    for stage in ("fit", "test"):
        (x, y), (x_ref, y_ref) = eval_batches(cached, stage), eval_batches(per_sample, stage)
        assert torch.equal(y, y_ref) and x.shape == x_ref.shape == (len(y), channels, 12, 10)
        torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-6)
    # Same split, and the training set is the uint8 one (augmented on the device).
    assert cached.train_set.indices == per_sample.train_set.indices
    assert isinstance(cached.train_set.dataset, TensorImageDataset)
    images, _ = next(iter(cached.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape[1:] == (channels, 12, 10)


def test_a_separate_validation_list_is_cached_on_its_own(photos):
    dm = csv_dm(photos, cache="memory", val_annotations_file=str(photos / "val.csv"))
    dm.setup("fit")
    assert isinstance(dm.val_set, TensorImageDataset) and len(dm.val_set) == 6
    assert len(dm.train_set) == 18  # nothing split off


def test_image_folders_are_cached_too(photos):
    dm = ImageFolderDataModule(
        root=str(photos / "images"), image_size=(8, 8), val_size=3, cache="memory", num_workers=0
    )
    x, y = eval_batches(dm)
    assert x.shape == (3, 3, 8, 8) and set(y.tolist()) <= {0, 1, 2}
    assert isinstance(dm.train_set.dataset, TensorImageDataset)


def test_auto_caches_what_fits_the_limit_and_says_so(photos, caplog):
    # 18 training + 6 test images of 3 x 12 x 10 bytes = 8,640 bytes.
    kwargs = {"test_annotations_file": str(photos / "test.csv")}
    with caplog.at_level("INFO"):
        assert csv_dm(photos, cache="auto", cache_limit_gb=1e-5, **kwargs).uses_tensors  # 10 kB
        assert not csv_dm(photos, cache="auto", cache_limit_gb=8e-6, **kwargs).uses_tensors  # 8 kB
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data.cache=")]
    assert said == [
        "data.cache=auto: decoding every image once, into memory: 8.6 kB for 24 images, "
        "within the limit of 10.0 kB (data.cache_limit_gb)",
        "data.cache=auto: decoding the image files in every epoch: caching would need 8.6 kB for 24 images, "
        "over the limit of 8.0 kB (data.cache_limit_gb)",
    ]


def test_a_user_transform_keeps_the_per_sample_path(photos, caplog):
    from torchvision.transforms import v2

    to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    with caplog.at_level("INFO"):
        dm = csv_dm(photos, cache="memory", train_transform=to_tensor)
        assert not dm.uses_tensors
    assert any("data.train_transform is set (it takes PIL images)" in r.getMessage() for r in caplog.records)


def test_training_batches_get_the_recipe_augmentations_on_the_device(photos):
    dm = csv_dm(photos, cache="memory", crop_padding=2, augment_policy="trivialaugment", random_erasing=0.5)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    out = dm.transform_batch(images, train=True)
    plain = dm.transform_batch(images, train=False)
    assert out.dtype == torch.float32 and out.shape == plain.shape
    assert not torch.equal(out, plain)  # augmented
    assert torch.equal(dm.transform_batch(images, train=False), plain)  # evaluation: no randomness


def test_fit_with_the_cache_from_the_cli(photos, tmp_path):
    cli = cli_main(
        [
            "fit",
            "--config",
            str(REPO / "configs/csv_images.yaml"),
            "--config",
            str(REPO / "configs/trainer/debug.yaml"),
            f"--data.annotations_file={photos / 'train.csv'}",
            f"--data.img_dir={photos / 'images'}",
            "--data.cache=memory",
            "--data.mixup_alpha=0.2",
            "--data.batch_size=4",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert cli.trainer.global_step == 1 and cli.datamodule.uses_tensors


def test_a_corrupt_image_found_while_caching_names_the_file(photos, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "images"
    make_image_folder(bad, CLASSES, n_per_class=2)
    (bad / "dog" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    rows = make_image_folder(tmp_path / "unused", CLASSES, n_per_class=2)
    write_csv(tmp_path / "train.csv", rows)
    args = ["fit", "--config", str(REPO / "configs/csv_images.yaml"), "--config"]
    args += [str(REPO / "configs/trainer/debug.yaml"), f"--data.annotations_file={tmp_path / 'train.csv'}"]
    args += [
        f"--data.img_dir={bad}",
        "--data.cache=memory",
        f"--trainer.default_root_dir={tmp_path / 'logs'}",
    ]
    status, output = run_cli_main(monkeypatch, capsys, args)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert status == 1 and len(errors) == 1
    assert "dog/3.png: cannot read the image: the file is damaged" in errors[0]
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--data.cache_limit_gb=-1", "data.cache_limit_gb: must be >= 0 (GB), got -1.0"),
        ("--data.cache=disk", "data.init_args.cache: expected one of auto, memory, none, got 'disk'"),
        ("--data.augment_policy=foo", "data.init_args.augment_policy: expected one of none, trivialaugment"),
    ],
)
def test_bad_cache_options_are_one_line(photos, tmp_path, monkeypatch, capsys, option, message):
    args = ["fit", "--config", str(REPO / "configs/csv_images.yaml"), option]
    args += [f"--data.annotations_file={photos / 'train.csv'}", f"--data.img_dir={photos / 'images'}"]
    args += [f"--trainer.default_root_dir={tmp_path}"]
    status, output = run_cli_main(monkeypatch, capsys, args)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert status != 0 and len(errors) == 1 and message in errors[0], output[-2000:]
    assert not list(tmp_path.iterdir())


def test_decode_errors_are_user_errors_naming_the_file(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "empty.png").write_bytes(b"")
    write_csv(tmp_path / "train.csv", [("ok.png", "a"), ("empty.png", "b")] * 2)
    dm = CSVImageDataModule(str(tmp_path / "train.csv"), val_size=1, cache="memory", num_workers=0)
    with pytest.raises(UserInputError, match=r"empty\.png: cannot read the image: the file is empty"):
        dm.setup("fit")
