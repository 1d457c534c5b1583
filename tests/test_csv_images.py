"""Images listed in CSV files: the `CSVImageDataset` and its datamodule, on generated PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms import v2

from src.data import CSVImageDataModule, CSVImageDataset
from src.errors import UserInputError
from src.lightning_cli import cli_main
from tests.helpers.cli import REPO
from tests.helpers.files import flatten_transforms, has_transform, make_image_folder, write_csv

CLASSES = ["cat", "dog", "frog"]

# Several tests reuse the training images as test images on purpose (what these warnings point out).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*also in the training CSV:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*duplicated row:UserWarning"),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """18 PNG files (6 per class, mixed sizes and modes) under `images/`, and CSVs listing them."""
    root = tmp_path_factory.mktemp("csv")
    listed = make_image_folder(root / "images", tuple(CLASSES), n_per_class=6)
    named = [(path, CLASSES[label]) for path, label in listed]
    write_csv(root / "names.csv", named, header=("file", "label"))
    write_csv(root / "names_no_header.csv", named)
    write_csv(root / "ids.csv", listed)
    write_csv(root / "ids_header.csv", listed, header=("image", "class_id"))
    # Separate validation and test CSVs, in the same folder as the images they list.
    write_csv(root / "images" / "val.csv", named[:6], header=("path", "label"))
    write_csv(root / "images" / "test.csv", named[6:15])
    return root, listed


def make_dm(root, **kwargs) -> CSVImageDataModule:
    # The per-sample path (decoded in every epoch): tests/test_cache.py covers the cached one.
    kwargs = {
        "img_dir": str(root / "images"),
        "val_size": 6,
        "batch_size": 4,
        "num_workers": 0,
        "cache": "none",
    } | kwargs
    return CSVImageDataModule(annotations_file=str(root / kwargs.pop("csv", "names.csv")), **kwargs)


@pytest.mark.parametrize("csv_name", ["names.csv", "names_no_header.csv", "ids.csv", "ids_header.csv"])
def test_dataset_reads_both_label_styles_with_or_without_header(images, csv_name):
    root, listed = images
    dataset = CSVImageDataset(root / csv_name, img_dir=root / "images")
    assert len(dataset) == 18
    assert dataset.targets == [label for _, label in listed]
    expected = CLASSES if csv_name.startswith("names") else ["0", "1", "2"]
    assert dataset.class_names == expected
    image, label = dataset[4]
    assert isinstance(image, Image.Image) and label == listed[4][1]


def test_header_can_be_stated(images):
    root, _ = images
    assert len(CSVImageDataset(root / "ids.csv", root / "images", header=True)) == 17  # first row dropped
    with pytest.raises(UserInputError, match=r"names\.csv:1: unknown class name 'label'"):
        CSVImageDataset(root / "names.csv", root / "images", class_names=CLASSES, header=False)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_images_are_converted_and_resized(images, channels, mode):
    root, _ = images
    dataset = CSVImageDataset(root / "names.csv", root / "images", channels=channels, image_size=(12, 16))
    for i in range(3):  # RGB, L and RGBA files of different sizes
        image, _ = dataset[i]
        assert image.mode == mode and image.size == (16, 12)  # PIL sizes are (width, height)


def test_class_facts_are_known_before_setup(images):
    root, _ = images
    dm = make_dm(root, channels=1, image_size=(20, 24))
    assert dm.class_names == CLASSES and dm.num_classes == 3
    assert dm.in_channels == 1 and dm.image_size == (20, 24)
    assert dm.mean == (0.5,) and dm.std == (0.5,)
    assert make_dm(root, csv="ids.csv").class_names == ["0", "1", "2"]
    given = ["kitten", "puppy", "tadpole"]
    assert make_dm(root, csv="ids.csv", class_names=given).class_names == given


def test_validation_gets_eval_transforms_and_split_is_seeded(images):
    root, _ = images
    first, again, other = (make_dm(root, seed=s) for s in (1, 1, 2))
    for dm in (first, again, other):
        dm.setup("fit")
    assert first.val_set.indices == again.val_set.indices != other.val_set.indices
    assert not set(first.train_set.indices) & set(first.val_set.indices)
    flips = [
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(first.train_set.dataset.transform)
    ]
    assert any(flips)
    assert not any(
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(first.val_set.dataset.transform)
    )


def test_separate_val_and_test_csvs_keep_their_labels(images):
    root, listed = images
    dm = make_dm(
        root,
        class_names=CLASSES,
        val_annotations_file=str(root / "images" / "val.csv"),
        test_annotations_file=str(root / "images" / "test.csv"),
    )
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (18, 6, 9)
    assert dm.test_set.targets == [label for _, label in listed[6:15]]
    assert any(
        isinstance(t, v2.RandomHorizontalFlip) for t in flatten_transforms(dm.train_set.dataset.transform)
    )
    assert not has_transform(dm.val_set.transform, v2.RandomHorizontalFlip)


def test_test_without_a_test_csv_is_a_clear_error(images):
    with pytest.raises(UserInputError, match="data.test_annotations_file is not set"):
        make_dm(images[0]).setup("test")


def test_class_unknown_to_the_training_csv_names_file_and_line(images, tmp_path):
    root, listed = images
    named = [(f"images/{path}", CLASSES[label]) for path, label in listed]
    train = write_csv(root / "no_frogs.csv", [row for row in named if row[1] != "frog"])
    test_csv = write_csv(tmp_path / "test.csv", [named[0], named[-1]])  # a cat, then a frog
    # The test CSV is checked when the datamodule is created, not after training.
    with pytest.raises(UserInputError, match=r"test\.csv:2: unknown class name 'frog'"):
        CSVImageDataModule(str(train), img_dir=str(root), test_annotations_file=str(test_csv))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([("cat/0.png", "3")], r"bad\.csv:1: label 3 out of range for 3 classes"),
        ([("cat/0.png", "-1")], r"bad\.csv:1: label -1 out of range"),
        ([("cat/0.png", "cat"), ("cat/gone.png", "cat")], r"bad\.csv:2: image file .*gone\.png not found"),
        ([("cat/0.png",)], r"bad\.csv:1: needs two columns"),
        ([("cat/0.png", "cat"), ("dog/6.png", "cow")], r"bad\.csv:2: unknown class name 'cow'"),
    ],
)
def test_bad_rows_are_one_line_errors_naming_file_and_line(images, tmp_path, rows, match):
    root, _ = images
    bad = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(UserInputError, match=match) as err:
        CSVImageDataset(bad, root / "images", class_names=CLASSES)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"csv": "missing.csv"}, r"data.annotations_file: CSV file .*missing\.csv not found"),
        ({"val_annotations_file": "nowhere.csv"}, "data.val_annotations_file: CSV file nowhere.csv"),
        ({"img_dir": "no/such/folder"}, "data.img_dir: folder no/such/folder not found"),
        ({"channels": 2}, "data.channels: must be 1"),
        ({"mean": [0.5]}, r"data.mean: needs one value per channel \(3\)"),
        ({"std": [0.5, 0.5, 0.0]}, "data.std: values must be > 0"),
        ({"class_names": ["a", "a"]}, "data.class_names: needs distinct names"),
    ],
)
def test_bad_settings_are_clear_errors(images, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        make_dm(images[0], **kwargs)


def test_compute_mean_std_of_the_training_images(tmp_path):
    for name, colour in (("a.png", (255, 0, 51)), ("b.png", (0, 0, 51))):
        Image.new("RGB", (5, 3), colour).save(tmp_path / name)
    train = write_csv(tmp_path / "train.csv", [("a.png", "x"), ("b.png", "y")] * 2)
    settings = {"val_annotations_file": str(train), "image_size": (3, 5), "num_workers": 0, "cache": "none"}
    mean, std = CSVImageDataModule(str(train), **settings).compute_mean_std()
    assert np.allclose(mean, [0.5, 0.0, 0.2]) and np.allclose(std, [0.5, 0.0, 0.0], atol=1e-6)
    # Normalised with those statistics, the red channel becomes -1 and 1.
    dm = CSVImageDataModule(str(train), mean=mean, std=[0.5, 1, 1], **settings)
    dm.setup("fit")
    assert {dm.val_set[i][0][0].mean().item() for i in range(2)} == {-1.0, 1.0}


def test_cli_links_the_csv_facts_into_the_model(images, overlay):
    root, _ = images
    args = overlay(
        f"""
data:
  class_path: src.data.CSVImageDataModule
  init_args:
    annotations_file: {root / "names.csv"}
    img_dir: {root / "images"}
    channels: 1
    image_size: [20, 24]
    val_size: 0.25
    num_workers: 0
"""
    )
    config = ["--config", str(REPO / "configs" / "fashion_mnist.yaml")]
    cli = cli_main([*config, *args, "--trainer.accelerator=cpu"], run=False)
    assert isinstance(cli.datamodule, CSVImageDataModule)
    hparams = cli.model.hparams
    assert hparams.class_names == CLASSES and hparams.num_classes == 3
    assert hparams.in_channels == 1 and hparams.image_size == (20, 24)


def test_help_lists_the_arguments(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--data.help", "src.data.CSVImageDataModule"])
    text = capsys.readouterr().out
    for arg in ("annotations_file", "val_annotations_file", "class_names", "header", "channels", "mean"):
        assert f"--data.{arg}" in text
    assert "--data.train_transform" in text and "--data.batch_size" in text
    assert "--data.data_dir" not in text


def test_fit_without_a_test_csv_skips_the_test_after_fit(images, fast_args, capsys):
    root, _ = images
    data = [
        "--data=src.data.CSVImageDataModule",
        f"--data.annotations_file={root / 'names.csv'}",
        f"--data.img_dir={root / 'images'}",
        "--data.val_size=6",
        "--data.batch_size=4",
        "--data.num_workers=0",
    ]
    cli = cli_main(["fit", *fast_args, *data, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    printed = capsys.readouterr().out
    assert "No test split in the data config: skipping the test after fit." in printed
    assert "Best checkpoint:" in printed and "Test accuracy" not in printed
    assert "test/acc" not in cli.trainer.callback_metrics
