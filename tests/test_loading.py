"""Safe loading: state dicts with wrapper prefixes, clear mismatch messages, no unpickled code by default."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from src.errors import UserInputError
from src.export import main as export_main
from src.models import ImageClassifier
from src.models.components import LeNet, TorchvisionResNet
from src.models.loading import load_weights, read_state_dict
from src.predict import main as predict_main
from tests.helpers.cli import run_command


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class MakesAFolder:
    """Unpickling this runs `os.mkdir(folder)`: what a malicious checkpoint could do instead."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __reduce__(self):
        return os.mkdir, (str(self.folder),)


# --- state dicts from wrappers ------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", ["DataParallel", "DDP-style", "torch.compile", "ImageClassifier", "none"])
def test_state_dicts_saved_through_wrappers_load_into_the_plain_network(tmp_path, wrapper):
    source = LeNet(num_classes=10)
    saved = {
        "DataParallel": lambda: nn.DataParallel(source).state_dict(),  # keys "module.features.0.weight", ...
        "DDP-style": lambda: {f"module.{k}": v for k, v in source.state_dict().items()},
        # what `torch.compile(source).state_dict()` holds (building the wrapper imports the compiler: slow)
        "torch.compile": lambda: {f"_orig_mod.{k}": v for k, v in source.state_dict().items()},
        "ImageClassifier": lambda: {"state_dict": ImageClassifier(source, num_classes=10).state_dict()},
        "none": source.state_dict,
    }[wrapper]()
    torch.save(saved, tmp_path / "weights.pth")
    target = LeNet(num_classes=10)
    assert not same_weights(source, target)
    load_weights(target, tmp_path / "weights.pth")
    assert same_weights(source, target)


def test_a_mismatch_lists_missing_and_unexpected_keys_and_shapes(tmp_path):
    network = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    other = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 4))
    torch.save(nn.DataParallel(other).state_dict(), tmp_path / "w.pth")
    with pytest.raises(UserInputError) as error:
        load_weights(network, tmp_path / "w.pth", "model.backbone_weights")
    assert str(error.value) == (
        f"model.backbone_weights: {tmp_path / 'w.pth'} does not fit Sequential "
        "(missing keys: 1.weight, 1.bias; unexpected keys: 2.weight, 2.bias; "
        "shape mismatches: 0.weight (5, 2) in the file vs (3, 2) in the "
        "network, 0.bias (5,) in the file vs (3,) in the network)"
    )


def test_long_key_lists_are_shortened_to_one_line(tmp_path):
    torch.save(TorchvisionResNet(num_classes=10).state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(UserInputError) as error:
        load_weights(LeNet(num_classes=10), tmp_path / "resnet.pth")
    message = str(error.value)
    assert "\n" not in message and len(message) < 600
    assert "missing keys: features.0.weight, features.0.bias, features.3.weight, ... (10 in all)" in message
    assert "unexpected keys: features.conv1.weight, features.bn1.weight, features.bn1.bias, ... (" in message


def test_a_prefix_on_only_some_keys_is_reported_not_half_loaded(tmp_path):
    state = nn.Linear(2, 3).state_dict()
    torch.save({"module.weight": state["weight"], "bias": state["bias"]}, tmp_path / "w.pth")
    with pytest.raises(UserInputError, match="missing keys: weight; unexpected keys: module.weight"):
        load_weights(nn.Linear(2, 3), tmp_path / "w.pth")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "weights: file {p} not found"),
        (lambda p: p.mkdir(), "weights: {p} is not a file"),
        (lambda p: p.write_bytes(b""), "weights: {p} is empty (0 bytes)"),
        (
            lambda p: p.write_text("a text file"),
            "weights: cannot load {p}: not a PyTorch file (not written by torch.save)",
        ),
        (
            lambda p: torch.save([torch.zeros(2)], p),
            "weights: cannot load {p}: it holds a list, not a state dict",
        ),
        (lambda p: torch.save({"epoch": 3}, p), "weights: cannot load {p}: it holds a dict of no tensors"),
    ],
    ids=["missing", "folder", "empty", "text", "list", "no tensors"],
)
def test_files_that_are_not_weights_are_one_line(tmp_path, make, message):
    path = tmp_path / "w.pth"
    make(path)
    with pytest.raises(UserInputError) as error:
        load_weights(nn.Linear(2, 3), path)
    assert str(error.value).startswith(message.format(p=path)) and "\n" not in str(error.value)


def test_backbone_weights_of_the_classifier_accept_a_data_parallel_file(tmp_path):
    source = LeNet(num_classes=10)
    torch.save(nn.DataParallel(source).state_dict(), tmp_path / "w.pth")
    model = ImageClassifier(LeNet(num_classes=10), num_classes=10, backbone_weights=str(tmp_path / "w.pth"))
    assert same_weights(model.backbone, source)
    torch.save(nn.Linear(2, 3).state_dict(), tmp_path / "small.pth")
    with pytest.raises(
        UserInputError, match=r"^model\.backbone_weights: .*small\.pth does not fit LeNet \(missing"
    ):
        ImageClassifier(LeNet(num_classes=10), num_classes=10, backbone_weights=str(tmp_path / "small.pth"))


def test_torchvision_resnet_weights_file_may_come_from_data_parallel(tmp_path):
    source = torchvision.models.resnet18()
    torch.save(nn.DataParallel(source).state_dict(), tmp_path / "r.pth")
    network = TorchvisionResNet(num_classes=4, arch="resnet18", weights=str(tmp_path / "r.pth"))
    assert torch.equal(network.features.conv1.weight, source.conv1.weight)
    assert torch.equal(network.features.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


# --- no pickled code without the opt-in ---------------------------------------------------------------


def test_a_whole_pickled_model_is_refused_unless_allowed(tmp_path):
    source = LeNet(num_classes=10)
    torch.save(source, tmp_path / "model.pt")  # the legacy `torch.save(model)`
    with pytest.raises(UserInputError) as error:
        load_weights(LeNet(num_classes=10), tmp_path / "model.pt", "model.backbone_weights")
    assert str(error.value) == (
        f"model.backbone_weights: cannot load {tmp_path / 'model.pt'}: it holds pickled Python objects "
        "(src.models.components.lenet.LeNet), e.g. a whole model saved with `torch.save(model)`, which are "
        "not loaded because unpickling can run code; save `model.state_dict()` instead; weights_only=False "
        "loads it if you trust the file"
    )
    target = LeNet(num_classes=10)
    load_weights(target, tmp_path / "model.pt", weights_only=False)
    assert same_weights(target, source)


def test_no_code_from_a_file_runs_by_default(trained, tmp_path, capsys):
    marker = tmp_path / "made-by-unpickling"
    torch.save(
        {"state_dict": {"weight": torch.zeros(3, 2)}, "payload": MakesAFolder(marker)}, tmp_path / "x.ckpt"
    )
    with pytest.raises(UserInputError, match=r"holds pickled Python objects \((posix|nt|os)\.mkdir\)"):
        read_state_dict(tmp_path / "x.ckpt")
    with pytest.raises(UserInputError, match="holds pickled Python objects"):
        ImageClassifier.from_checkpoint(tmp_path / "x.ckpt")
    image = Path(trained.test_dir) / "000.png"
    code, _, err = run_command(predict_main, [tmp_path / "x.ckpt", image], capsys)
    assert code == 1 and "--no-weights-only loads it if you trust the file" in err and err.count("\n") == 1
    code, _, err = run_command(export_main, [tmp_path / "x.ckpt", "-o", tmp_path / "m.onnx"], capsys)
    assert code == 1 and "--no-weights-only loads it if you trust the file" in err and err.count("\n") == 1
    assert not marker.exists()  # nothing was unpickled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ckpt"]


def _python_built_checkpoint(path: Path) -> ImageClassifier:
    """A checkpoint of a classifier built in Python around a network object: its hyperparameters hold
    the pickled `LeNet` (as Lightning saves them), so it cannot be read weights-only."""
    import lightning

    model = ImageClassifier(LeNet(num_classes=3), num_classes=3, class_names=["ant", "bee", "cat"])
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    torch.save(checkpoint, path)
    return model.eval()


@pytest.mark.parametrize("legacy", ["checkpoint with a pickled network", "torch.save(model)"])
def test_predict_loads_legacy_pickles_only_with_weights_only(trained, tmp_path, capsys, legacy):
    ckpt = tmp_path / "legacy.ckpt"
    if legacy == "torch.save(model)":
        model = ImageClassifier(LeNet(num_classes=3), num_classes=3, class_names=["ant", "bee", "cat"]).eval()
        torch.save(model, ckpt)
    else:
        model = _python_built_checkpoint(ckpt)
    image = Path(trained.test_dir) / "000.png"
    code, out, err = run_command(predict_main, [ckpt, image, "--top-k", 3], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: CHECKPOINT: cannot load {ckpt}: it holds pickled Python objects (")
    assert err.endswith("--no-weights-only loads it if you trust the file\n") and err.count("\n") == 1

    code, out, err = run_command(predict_main, [ckpt, image, "--top-k", 3, "--no-weights-only"], capsys)
    assert code == 0, err
    loaded = ImageClassifier.from_checkpoint(ckpt, weights_only=False)
    assert same_weights(loaded, model) and loaded.class_names == ["ant", "bee", "cat"]
    pixels = torch.tensor(np.asarray(Image.open(image))) / 255
    with torch.inference_mode():
        probs = model(model.normalize(pixels[None, None].float())).softmax(-1)[0]
    best = int(probs.argmax())
    assert out.split()[1:3] == [["ant", "bee", "cat"][best], f"{probs[best].item():.3f}"]


# --- checkpoints that do not fit ----------------------------------------------------------------------


def test_a_checkpoint_with_the_weights_of_another_network_lists_the_keys(trained, tmp_path):
    checkpoint = torch.load(trained.ckpt, weights_only=True)
    checkpoint["state_dict"] = ImageClassifier(LeNet(num_classes=10), num_classes=10).state_dict()
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(UserInputError) as error:
        ImageClassifier.from_checkpoint(tmp_path / "other.ckpt")
    message = str(error.value)
    assert message.startswith(f"CHECKPOINT: {tmp_path / 'other.ckpt'}: its weights do not fit its ConvNet (")
    assert "missing keys: backbone.features.0.0.weight," in message
    assert "unexpected keys: backbone.features.0.weight," in message and "\n" not in message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda raw, p: p.write_bytes(raw[: len(raw) // 2]),
            "CHECKPOINT: cannot load {p}: a damaged PyTorch file, corrupt or truncated? (RuntimeError: "
            "PytorchStreamReader failed reading zip archive: failed finding central directory)",
        ),
        (
            lambda raw, p: torch.save(LeNet().state_dict(), p),
            "CHECKPOINT: {p} is not a checkpoint of this project's ImageClassifier (it holds a state dict of "
            "weights only; a network's weights go in `model.backbone_weights` for training)",
        ),
        (
            lambda raw, p: torch.save({"state_dict": LeNet().state_dict()}, p),
            "CHECKPOINT: {p} is not a checkpoint of this project's ImageClassifier (it has no "
            "hyperparameters to rebuild the network from)",
        ),
        (
            lambda raw, p: torch.save(torch.zeros(3), p),
            "CHECKPOINT: {p} is not a checkpoint of this project's ImageClassifier (it holds a Tensor;",
        ),
    ],
    ids=["truncated", "plain state dict", "no hyperparameters", "a tensor"],
)
def test_files_that_are_not_checkpoints_are_one_line(trained, tmp_path, capsys, make, message):
    path = tmp_path / "bad.ckpt"
    make(Path(trained.ckpt).read_bytes(), path)
    code, out, err = run_command(
        predict_main, [path, trained.test_dir, "--output", tmp_path / "p.csv"], capsys
    )
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {message.format(p=path)}") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ckpt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "locked.ckpt"
    torch.save({"state_dict": {}}, path)
    path.chmod(0)
    try:
        with pytest.raises(UserInputError, match=r"^CHECKPOINT: cannot read .*locked\.ckpt \(permission"):
            ImageClassifier.from_checkpoint(path)
    finally:
        path.chmod(0o644)
