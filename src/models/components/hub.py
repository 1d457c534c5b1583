"""Any torchvision classification model or any timm model, by name, as a `features` body and a new head.

`TorchvisionNet` builds one of `torchvision.models.list_models(module=torchvision.models)`, `TimmNet` one
of `timm.list_models()` (timm is imported on first use: it takes a while). Both give the contract of every
network here: `features` maps images to flat features (N, F), `classifier` is a fresh `nn.Linear(F,
num_classes)`, so per-group learning rates and freezing can select `backbone.features.*`.
"""

from __future__ import annotations

import difflib
import pickle
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torchvision
from torch import nn

from src.errors import UserInputError, one_line
from src.models.components.torchvision_resnet import _downloading, _looks_like_path, _weights_enum
from src.models.loading import _check_file, load_weights, safe_load

#: How many characters of a library's error message the one-line errors keep.
REASON_CHARS = 200


def _unknown_name(who: str, name: str, names: list[str], listing: str) -> UserInputError:
    close = difflib.get_close_matches(name.lower(), names, n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UserInputError(f"{who} name {name!r}: no such model ({hint}{listing} lists all {len(names)})")


def _reason(err: BaseException) -> str:
    """What went wrong at the bottom of `err`'s chain of causes, on one line, shortened."""
    for _ in range(10):
        if err.__cause__ is None:
            break
        err = err.__cause__
    text = one_line(getattr(err, "reason", None) or err)  # a URLError's reason, if any
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def _adapt_input_conv(model: nn.Module, in_channels: int, pretrained: bool, who: str) -> None:
    """Replace the first `nn.Conv2d` by one taking `in_channels` channels, if it takes others."""
    path, old = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), ("", None))
    if old is None:
        raise UserInputError(f"{who}: no nn.Conv2d to adapt to in_channels={in_channels}")
    if old.in_channels == in_channels:
        return
    geometry = ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode")
    same: dict[str, Any] = {key: getattr(old, key) for key in geometry}
    new = nn.Conv2d(in_channels, old.out_channels, bias=old.bias is not None, **same)
    with torch.no_grad():
        if pretrained:  # a gray image repeated on every channel gets the RGB conv's response
            new.weight.copy_(old.weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    _set_module(model, path, new)


class TorchvisionNet(nn.Module):
    """Any torchvision classification model (`resnet50`, `mobilenet_v3_small`, `efficientnet_b0`,
    `convnext_tiny`, `vit_b_16`, ...), with its final layer replaced by a fresh `num_classes` head.

    The model's last `nn.Linear` becomes `nn.Flatten()` (a no-op on the flat features it took), so the
    model is `features`, and `classifier` is a new `nn.Linear(in_features, num_classes)`. With
    `in_channels` other than the first conv's, that conv is replaced by one with `in_channels` inputs
    (pretrained: the pretrained conv summed over its input channels, divided by `in_channels`; else kaiming
    init). Auxiliary heads (GoogLeNet, Inception v3) are removed. Some models only take their own input
    size (ViT: 224 px; Inception v3: at least 75 px).

    >>> net = TorchvisionNet(num_classes=10, in_channels=1, image_size=(32, 32), name="mobilenet_v3_small")
    >>> net(torch.zeros(2, 1, 32, 32)).shape, net.features(torch.zeros(2, 1, 32, 32)).shape
    (torch.Size([2, 10]), torch.Size([2, 1024]))

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images (unused: most models pool adaptively).
        name: The model, one of `torchvision.models.list_models(module=torchvision.models)`.
        weights: None (random init), a torchvision weights name of that model such as `IMAGENET1K_V1`,
            `DEFAULT` or `ResNet18_Weights.IMAGENET1K_V1` (downloaded once into the torch hub cache,
            `torch.hub.get_dir()/checkpoints`), or the path of a local `.pth` state dict of the model.
        stem: `imagenet` keeps the model's stem; `cifar` (ResNet family only) uses a fresh 3x3 stride-1
            first conv and no max-pooling, for 32 px images.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: tuple[int, int] = (224, 224),
        name: str = "resnet18",
        weights: str | None = None,
        stem: Literal["cifar", "imagenet"] = "imagenet",
    ) -> None:
        super().__init__()
        who = f"TorchvisionNet {name}"
        names = torchvision.models.list_models(module=torchvision.models)
        if name not in names:
            raise _unknown_name(
                "TorchvisionNet", name, names, "torchvision.models.list_models(module=torchvision.models)"
            )
        if weights and not _looks_like_path(weights):
            enum = _weights_enum(name, weights, who="TorchvisionNet")
            with _downloading(enum, who="TorchvisionNet"):  # the builder sets what the weights need
                model = torchvision.models.get_model(name, weights=enum)
        else:
            model = torchvision.models.get_model(name, weights=None)
            if weights:
                load_weights(model, weights, "TorchvisionNet weights", f"torchvision's {name}")
        if getattr(model, "aux_logits", False):  # GoogLeNet, Inception v3: one output, no unused weights
            model.aux_logits = False
            for aux in ("aux1", "aux2", "AuxLogits"):
                if hasattr(model, aux):
                    setattr(model, aux, None)

        linears = [path for path, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise UserInputError(f"{who}: it has no final nn.Linear to replace by a {num_classes}-class head")
        head = model.get_submodule(linears[-1])
        assert isinstance(head, nn.Linear)
        _set_module(model, linears[-1], nn.Flatten())

        if stem == "cifar":
            conv1 = getattr(model, "conv1", None)
            if not isinstance(conv1, nn.Conv2d) or not hasattr(model, "maxpool"):
                raise UserInputError(
                    f"{who}: stem 'cifar' is for the ResNet family only (a `conv1` conv and a `maxpool`); "
                    "use stem 'imagenet'"
                )
            model.conv1 = nn.Conv2d(in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
            model.maxpool = nn.Identity()
        _adapt_input_conv(model, in_channels, pretrained=bool(weights), who=who)

        self.features = model
        self.classifier = nn.Linear(head.in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class TimmNet(nn.Module):
    """Any timm model (`resnet50`, `efficientnet_b0`, `convnext_nano`, `vit_small_patch16_224`, ...) built
    without its head, and a fresh `num_classes` head.

    `features` is `timm.create_model(name, num_classes=0, in_chans=in_channels, ...)`, which gives pooled
    features (N, F); `classifier` is a new `nn.Linear(F, num_classes)`. timm adapts the pretrained first
    conv to `in_channels` itself. Pretrained weights download once from the Hugging Face Hub into its cache
    (`HF_HOME`); offline, put them there or pass a local file as `weights`.

    >>> net = TimmNet(num_classes=10, in_channels=1, image_size=(32, 32), name="resnet18")
    >>> net(torch.zeros(2, 1, 32, 32)).shape, net.features(torch.zeros(2, 1, 32, 32)).shape
    (torch.Size([2, 10]), torch.Size([2, 512]))

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: (height, width) of the input images (unused; models of a fixed size, such as ViTs,
            take another through `model_kwargs`, e.g. `{img_size: 32}`).
        name: The model, one of `timm.list_models()`, optionally with a weights tag (`resnet18.a1_in1k`).
        pretrained: Start from timm's pretrained weights of `name`.
        weights: A local file of timm weights of `name` (`.safetensors`, `.pth`, `.bin`), loaded as
            pretrained weights (timm drops their head and adapts their first conv); implies `pretrained`.
        drop_rate: Dropout rate before the head (inside `features`).
        drop_path_rate: Stochastic-depth rate, for the models that have it (None: timm's default).
        model_kwargs: More keyword arguments of the timm model, e.g. `{img_size: 32}`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: tuple[int, int] = (224, 224),
        name: str = "resnet18",
        pretrained: bool = False,
        weights: str | None = None,
        drop_rate: float = 0.0,
        drop_path_rate: float | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm  # here, not at the top: it adds most of a second to every start of the CLI
        from huggingface_hub.constants import HF_HUB_CACHE
        from safetensors import SafetensorError

        who = f"TimmNet {name}"
        if ":" not in name and not timm.is_model(name):  # `hf-hub:...` and `local-dir:...` go to timm
            raise _unknown_name("TimmNet", name, timm.list_models(), "timm.list_models()")
        overlay: dict[str, Any] = {}
        if weights:
            path = Path(weights).expanduser()
            if path.suffix == ".safetensors":
                _check_file(path, "TimmNet weights")
            else:  # a missing, corrupt or unsafe (pickled objects) file is one line naming it
                safe_load(path, "TimmNet weights", mmap=True)
            overlay["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            model = timm.create_model(
                name,
                pretrained=pretrained or bool(weights),
                num_classes=0,
                in_chans=in_channels,
                drop_rate=drop_rate,
                drop_path_rate=drop_path_rate,  # timm leaves out the arguments that are None
                **overlay,
                **(model_kwargs or {}),
            )
        except OSError as err:  # offline: huggingface_hub's LocalEntryNotFoundError, urllib's URLError
            if weights:
                raise UserInputError(f"TimmNet weights: cannot load {weights} ({_reason(err)})") from err
            cfg = timm.models.get_pretrained_cfg(name)
            source = getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None)
            raise UserInputError(
                f"{who}: cannot download the pretrained weights ({source + ': ' if source else ''}"
                f"{_reason(err)}); put them in the Hugging Face cache ({HF_HUB_CACHE}) or pass a local "
                "file as `weights`"
            ) from err
        except (RuntimeError, pickle.UnpicklingError, SafetensorError) as err:
            if str(err).startswith("No pretrained weights exist"):
                raise UserInputError(
                    f"{who}: timm has no pretrained weights for it (use pretrained false, or a local file "
                    "as `weights`)"
                ) from err
            if not weights:
                raise
            raise UserInputError(
                f"TimmNet weights: {weights} does not fit timm's {name} ({_reason(err)})"
            ) from err
        except TypeError as err:  # an argument the model does not take
            if "unexpected keyword argument" not in str(err):
                raise
            raise UserInputError(f"{who}: {_reason(err)} (see model_kwargs, drop_path_rate)") from err

        self.features = model
        width = cast(int, getattr(model, "head_hidden_size", None) or model.num_features)  # pooled
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
