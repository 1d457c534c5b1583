"""Per-parameter-group learning rates, weight decay and freezing, selected by parameter name."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from fnmatch import fnmatchcase

from torch import nn
from torch.optim import Optimizer

from src.errors import UserInputError


@dataclass
class ParamGroup:
    """A group of parameters, chosen by name, with its own optimiser settings.

    Names are those of the LightningModule's `named_parameters()`, e.g. `backbone.classifier.0.weight`.
    A parameter belongs to the first group whose pattern matches it; parameters matched by no group
    form a last group with the optimiser's defaults.

    Args:
        params: Glob pattern(s) on parameter names, e.g. `backbone.classifier.*` or `*.bias`.
        lr: Learning rate of the group (overrides the optimiser's `lr`).
        lr_scale: Multiplier on the optimiser's `lr` (e.g. 0.1 for a pretrained backbone). Not with `lr`.
        weight_decay: Weight decay of the group (overrides the optimiser's).
        freeze: Freeze the group: `requires_grad=False`, left out of the optimiser.
        name: Name shown by the learning-rate monitor (default: the first pattern).
    """

    params: str | list[str]
    lr: float | None = None
    lr_scale: float | None = None
    weight_decay: float | None = None
    freeze: bool = False
    name: str | None = None

    @property
    def patterns(self) -> list[str]:
        return [self.params] if isinstance(self.params, str) else list(self.params)


def assign_param_groups(module: nn.Module, groups: list[ParamGroup]) -> tuple[list[list[str]], list[str]]:
    """Assign each parameter name of `module` to the first group matching it.

    Returns:
        The names in each group, and the names matched by no group.

    Raises:
        UserInputError: a pattern matches no parameter (most often a typo), or a group sets both
            `lr` and `lr_scale`.
    """
    names = [name for name, _ in module.named_parameters()]
    for i, group in enumerate(groups):
        if group.lr is not None and group.lr_scale is not None:
            raise UserInputError(f"model.param_groups[{i}]: set `lr` or `lr_scale`, not both")
        for pattern in group.patterns:
            if not any(fnmatchcase(name, pattern) for name in names):
                parts = [name.split(".") for name in names]
                modules = sorted({".".join(p[:k]) + ".*" for p in parts for k in range(1, len(p))})
                close = difflib.get_close_matches(pattern, modules, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UserInputError(
                    f"model.param_groups[{i}].params: pattern {pattern!r} matches no parameter{hint} "
                    f"(names look like {names[0]!r})"
                )
    members: list[list[str]] = [[] for _ in groups]
    rest: list[str] = []
    for name in names:
        for i, group in enumerate(groups):
            if any(fnmatchcase(name, p) for p in group.patterns):
                members[i].append(name)
                break
        else:
            rest.append(name)
    return members, rest


def freeze_param_groups(module: nn.Module, groups: list[ParamGroup]) -> None:
    """Set `requires_grad=False` on the parameters of the groups marked `freeze`."""
    members, _ = assign_param_groups(module, groups)
    params = dict(module.named_parameters())
    for group, names in zip(groups, members, strict=True):
        if group.freeze:
            for name in names:
                params[name].requires_grad_(False)


def build_param_groups(module: nn.Module, groups: list[ParamGroup]) -> list[dict]:
    """Optimiser parameter groups (dicts for `torch.optim`) for the trainable parameters of `module`.

    Frozen groups and parameters with `requires_grad=False` are left out. A group's `lr_scale` is
    stored in the dict and turned into an `lr` by `apply_lr_scales` once the optimiser exists.
    """
    members, rest = assign_param_groups(module, groups)
    params = dict(module.named_parameters())
    out = []
    for group, names in zip(groups, members, strict=True):
        trainable = [params[n] for n in names if params[n].requires_grad]
        if group.freeze or not trainable:
            continue
        entry: dict = {"params": trainable, "name": group.name or group.patterns[0]}
        if group.lr is not None:
            entry["lr"] = group.lr
        if group.lr_scale is not None:
            entry["lr_scale"] = group.lr_scale
        if group.weight_decay is not None:
            entry["weight_decay"] = group.weight_decay
        out.append(entry)
    default = [params[n] for n in rest if params[n].requires_grad]
    if default:
        out.append({"params": default, "name": "default"})
    return out


def apply_lr_scales(optimizer: Optimizer) -> None:
    """Set `lr = optimizer's default lr * lr_scale` on groups that carry an `lr_scale`."""
    for group in optimizer.param_groups:
        if "lr_scale" in group:
            group["lr"] = optimizer.defaults["lr"] * group["lr_scale"]
