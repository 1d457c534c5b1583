"""Training augmentation: the recipes' policies, random erasing, MixUp/CutMix, and their batched forms.

What timm's and torchvision's reference training scripts offer by a flag, as data options
(`VisionDataModule`'s `augment_policy`, `random_erasing`, `mixup_alpha`, `cutmix_alpha`), built from
torchvision's transforms v2; `batch_augment` applies per-image augmentations to a whole uint8 batch on
the device (the in-memory data path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from src.errors import UserInputError

#: The automatic augmentation policies, by their name in a config.
POLICIES: dict[str, type[v2.Transform]] = {
    "trivialaugment": v2.TrivialAugmentWide,
    "randaugment": v2.RandAugment,
    "autoaugment": v2.AutoAugment,
}
Policy = Literal["none", "trivialaugment", "randaugment", "autoaugment"]


def check_crop_padding(padding: int) -> int:
    """`data.crop_padding`, checked: 0 (no crop) or more pixels.

    Raises:
        UserInputError: A negative padding (one line naming the key).
    """
    if padding < 0:
        raise UserInputError(f"data.crop_padding: must be 0 or more pixels, got {padding}")
    return padding


def crop_and_flip(image_size: Sequence[int], padding: int) -> list[v2.Transform]:
    """A random crop of `image_size` from the image padded by `padding` pixels (none when 0), then a
    random horizontal flip: the translation-and-mirror augmentation of the CIFAR recipe (padding 4)."""
    crop = [v2.RandomCrop(list(image_size), padding=padding)] if padding else []
    return [*crop, v2.RandomHorizontalFlip()]


def recipe_augmentations(policy: str = "none", random_erasing: float = 0.0) -> list[v2.Transform]:
    """The recipe's augmentations on uint8 images, after the dataset's own crop/flip: the policy, then
    random erasing with probability `random_erasing` (erased pixels set to 0).

    >>> [type(t).__name__ for t in recipe_augmentations("trivialaugment", 0.25)]
    ['TrivialAugmentWide', 'RandomErasing']

    Args:
        policy: `none`, `trivialaugment` (TrivialAugmentWide), `randaugment` or `autoaugment`, each with
            torchvision's defaults.
        random_erasing: Probability of erasing a random rectangle of each image (0: off).
    """
    transforms = [] if policy == "none" else [POLICIES[policy]()]
    if random_erasing:
        transforms.append(v2.RandomErasing(p=random_erasing, value=0))
    return transforms


def batch_mixer(mixup_alpha: float, cutmix_alpha: float, num_classes: int) -> v2.Transform | None:
    """MixUp, CutMix, or a random choice of the two per batch (torchvision's recipe), or None when both
    alphas are 0. Called on a normalised batch and its class ids, it returns the mixed batch and soft
    targets (N, num_classes).

    Args:
        mixup_alpha: Beta(alpha, alpha) of MixUp's mixing weight (0.2 in torchvision's recipe; 0: off).
        cutmix_alpha: Beta(alpha, alpha) of CutMix's area (1.0 in torchvision's recipe; 0: off).
        num_classes: Number of classes of the soft targets.
    """
    mixers = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def batch_augment(images: torch.Tensor, augmentations: Sequence[v2.Transform]) -> torch.Tensor:
    """Apply per-sample augmentations to a batch of images, each image drawing its own random parameters.

    The batched equivalent of applying `v2.Compose(augmentations)` to every image on its own. Vectorised
    over the batch: `v2.RandomCrop` with constant padding (the CIFAR recipe `RandomCrop(32, padding=4)`)
    and `v2.RandomHorizontalFlip`. Any other transform (the policies `TrivialAugmentWide`, `RandAugment`,
    `AutoAugment`, `RandomErasing`, ...) is called on each image in turn, on the images' device, so each
    image draws its own operation and magnitude from the very distribution of the per-sample path. Random
    numbers come from torch's generator.

    >>> images = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).repeat(8, 1, 1, 1)
    >>> flipped = batch_augment(images, [v2.RandomHorizontalFlip(p=1.0)])
    >>> flipped[0, 0, 0].tolist()
    [3, 2, 1, 0]

    Args:
        images: Images (N, C, H, W), any dtype.
        augmentations: The training augmentations (`VisionDataModule.training_augmentations()`).

    Raises:
        ValueError: A `RandomCrop` with padding other than constant (not vectorised).
    """
    for transform in augmentations:
        if isinstance(transform, v2.RandomHorizontalFlip):
            images = _random_flip(images, transform.p)
        elif isinstance(transform, v2.RandomCrop):
            images = _random_crop(images, transform)
        else:
            images = torch.stack([transform(image) for image in images])
    return images


def _random_flip(images: torch.Tensor, p: float) -> torch.Tensor:
    """Flip each image left-right with probability `p` (as `v2.RandomHorizontalFlip(p)` per image).

    One `gather` with a per-image column order (reversed or not), rather than flipping the whole batch.
    """
    n, c, h, w = images.shape
    flip = torch.rand(n, device=images.device) < p
    columns = torch.arange(w, device=images.device)
    order = torch.where(flip.view(n, 1), columns.flip(0), columns)
    return images.gather(3, order.view(n, 1, 1, w).expand(n, c, h, w))


def _random_crop(images: torch.Tensor, crop: v2.RandomCrop) -> torch.Tensor:
    """Pad, then cut each image at its own uniformly drawn offset (as `crop` does per image)."""
    if crop.pad_if_needed or (crop.padding is not None and crop.padding_mode != "constant"):
        raise ValueError(
            "the in-memory data path supports RandomCrop with constant padding only; "
            "set data.in_memory=false to use the per-sample transforms"
        )
    if crop.padding is not None:
        left, right, top, bottom = crop.padding
        images = F.pad(images, [left, top, right, bottom], fill=crop.fill)
    n, _, height, width = images.shape
    crop_h, crop_w = crop.size
    device = images.device
    top = torch.randint(0, height - crop_h + 1, (n, 1), device=device)
    left = torch.randint(0, width - crop_w + 1, (n, 1), device=device)
    rows = (top + torch.arange(crop_h, device=device)).view(n, 1, crop_h, 1)
    cols = (left + torch.arange(crop_w, device=device)).view(n, 1, 1, crop_w)
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=device).view(1, -1, 1, 1)
    return images[batch, channels, rows, cols]
