"""TorchvisionNet and TimmNet: any torchvision or timm model by name, offline, through the CLI and back."""

from __future__ import annotations

import contextlib
import io
import socket

import pytest
import timm
import torch
import torchvision
from huggingface_hub.errors import LocalEntryNotFoundError
from torch import nn

from src.errors import UserInputError
from src.lightning_cli import cli_main
from src.models import ImageClassifier
from src.models.components import TimmNet, TorchvisionNet

#: Small models of each library, and how wide their features are.
SMALL = [
    (lambda c: TorchvisionNet(7, c, (32, 32), name="mobilenet_v3_small"), 1024),
    (lambda c: TorchvisionNet(7, c, (32, 32), name="resnet18", stem="cifar"), 512),
    (lambda c: TimmNet(7, c, (32, 32), name="test_resnet"), 96),
    (lambda c: TimmNet(7, c, (32, 32), name="test_efficientnet", drop_rate=0.1, drop_path_rate=0.1), 256),
]
SMALL_IDS = ["tv-mobilenet", "tv-resnet18-cifar", "timm-test_resnet", "timm-test_efficientnet"]


@pytest.fixture
def offline_hf_hub(monkeypatch) -> None:
    """Hugging Face Hub downloads that fail at once as they do offline (the real ones retry for ~45 s)."""

    def no_network(*args, **kwargs):
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as err:
            raise LocalEntryNotFoundError(
                "An error happened while trying to locate the file on the Hub and we cannot find the "
                "requested files in the local cache. Please check your connection and try again."
            ) from err

    monkeypatch.setattr(timm.models._hub, "hf_hub_download", no_network)


# --- shapes and parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "width"), SMALL, ids=SMALL_IDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes_and_parts(make, width, channels):
    net = make(channels)
    x = torch.randn(2, channels, 32, 32)
    assert net(x).shape == (2, 7)
    assert net.features(x).shape == (2, width)
    assert isinstance(net.classifier, nn.Linear)
    assert (net.classifier.in_features, net.classifier.out_features) == (width, 7)
    names = [name for name, _ in net.named_parameters()]
    assert names[-2:] == ["classifier.weight", "classifier.bias"]
    assert all(name.startswith(("features.", "classifier.")) for name in names)


def test_torchvision_net_replaces_the_last_linear_and_the_first_conv():
    net = TorchvisionNet(num_classes=5, in_channels=1, name="mobilenet_v3_small")
    head = net.features.classifier  # torchvision's own head: Linear, Hardswish, Dropout, (Linear)
    assert isinstance(head[0], nn.Linear) and isinstance(head[-1], nn.Flatten)
    first = net.features.features[0][0]
    assert isinstance(first, nn.Conv2d) and first.in_channels == 1
    assert (first.kernel_size, first.stride, first.padding) == ((3, 3), (2, 2), (1, 1))
    resnet = TorchvisionNet(num_classes=5, name="resnet18", stem="cifar")
    assert resnet.features.conv1.kernel_size == (3, 3) and resnet.features.conv1.stride == (1, 1)
    assert isinstance(resnet.features.maxpool, nn.Identity)
    assert next(iter(dict(resnet.named_parameters()))) == "features.conv1.weight"


@pytest.mark.filterwarnings("ignore:The default weight initialization of GoogleNet")
def test_googlenet_loses_its_auxiliary_heads():
    net = TorchvisionNet(num_classes=4, name="googlenet").train()
    assert net.features.aux1 is None and net.features.aux2 is None
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 4)  # a tensor, not GoogLeNetOutputs


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: TorchvisionNet(name="resnet81"),
            r"TorchvisionNet name 'resnet81': no such model .*resnet18",
        ),
        (lambda: TorchvisionNet(name="mobilenet_v3_small", stem="cifar"), "ResNet family only"),
        (lambda: TorchvisionNet(name="squeezenet1_1"), "squeezenet1_1: it has no final nn.Linear"),
        (lambda: TorchvisionNet(name="resnet18", weights="IMAGENET1K_V9"), "choose from IMAGENET1K_V1"),
        (lambda: TimmNet(name="resnet81"), r"TimmNet name 'resnet81': no such model .*resnet18"),
        (lambda: TimmNet(name="botnet50ts_256", pretrained=True), "timm has no pretrained weights"),
        (lambda: TimmNet(name="test_resnet", model_kwargs={"nope": 1}), "unexpected keyword argument 'nope'"),
    ],
    ids=["tv-name", "tv-cifar-stem", "tv-no-linear", "tv-weights-name", "timm-name", "timm-none", "timm-kw"],
)
def test_user_errors_are_one_line(make, match):
    with pytest.raises(UserInputError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("weights", ["IMAGENET1K_V1", "DEFAULT", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"])
def test_torchvision_net_offline_says_where_to_put_the_file(offline_hub, weights):
    with pytest.raises(UserInputError) as info:
        TorchvisionNet(num_classes=10, name="mobilenet_v3_small", weights=weights)
    message = str(info.value)
    assert message.startswith(
        "TorchvisionNet weights MobileNet_V3_Small_Weights.IMAGENET1K_V1: cannot download"
    )
    assert str(offline_hub / "checkpoints" / "mobilenet_v3_small-047dcff4.pth") in message
    assert "Temporary failure in name resolution" in message and "\n" not in message


def test_timm_net_offline_is_one_line(offline_hf_hub):
    with pytest.raises(UserInputError) as info:
        TimmNet(num_classes=10, name="resnet18", pretrained=True)
    message = str(info.value)
    assert message.startswith(
        "TimmNet resnet18: cannot download the pretrained weights "
        "(timm/resnet18.a1_in1k: [Errno -2] Name or service not known); put them in the Hugging Face cache"
    )
    assert message.endswith("or pass a local file as `weights`") and "\n" not in message


@pytest.mark.parametrize("make", [TorchvisionNet, TimmNet])
def test_missing_and_garbage_weights_files_are_named(make, tmp_path):
    with pytest.raises(UserInputError, match=f"{make.__name__} weights: file .*nope/w.pth not found"):
        make(name="resnet18", weights=str(tmp_path / "nope" / "w.pth"))
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="garbage.pth.*not a PyTorch file"):
        make(name="resnet18", weights=str(tmp_path / "garbage.pth"))


# --- local weights files ------------------------------------------------------------------------------


def test_torchvision_net_loads_a_local_file(tmp_path):
    torch.manual_seed(0)
    saved = torchvision.models.get_model("mobilenet_v3_small").state_dict()
    torch.save(saved, tmp_path / "mobilenet.pth")
    net = TorchvisionNet(5, 1, name="mobilenet_v3_small", weights=str(tmp_path / "mobilenet.pth"))
    state = net.features.state_dict()
    assert torch.equal(state["features.1.block.0.0.weight"], saved["features.1.block.0.0.weight"])
    assert torch.equal(state["classifier.0.weight"], saved["classifier.0.weight"])  # the body's Linear
    # The gray first conv is the pretrained one summed over RGB.
    assert torch.allclose(state["features.0.0.weight"], saved["features.0.0.weight"].sum(1, keepdim=True))


def test_timm_net_loads_a_local_file(tmp_path):
    torch.manual_seed(0)
    saved = timm.create_model("test_resnet").state_dict()  # with timm's 1000-class head
    torch.save(saved, tmp_path / "test_resnet.pth")
    net = TimmNet(5, 3, name="test_resnet", weights=str(tmp_path / "test_resnet.pth"))
    state = net.features.state_dict()
    assert set(saved) - set(state) == {"fc.weight", "fc.bias"}
    assert all(torch.equal(state[key], saved[key]) for key in state)
    with pytest.raises(UserInputError, match="test_resnet.pth does not fit timm's test_efficientnet"):
        TimmNet(5, 3, name="test_efficientnet", weights=str(tmp_path / "test_resnet.pth"))


# --- through the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "name"),
    [("TimmNet", "test_resnet"), ("TorchvisionNet", "mobilenet_v3_small")],
)
def test_cli_trains_and_the_checkpoint_rebuilds_the_network(fast_args, backbone, name):
    args = [
        "fit",
        *fast_args,
        f"--model.init_args.backbone=src.models.components.{backbone}",
        f"--model.init_args.backbone.init_args.name={name}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--test_after_fit=false",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        cli = cli_main(args)
    assert cli.trainer.global_step == 2
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    model = ImageClassifier.from_checkpoint(checkpoint)
    assert type(model.backbone).__name__ == backbone and model.backbone.classifier.out_features == 10
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), cli.model.cpu().eval()(x), atol=1e-5)
