"""Training-batch augmentation: a seeded, checkpointed chain of batched image operations.

``data.augment`` lists ``AUGMENTATIONS`` names applied in order to every training batch (and to
replayed batches), after normalisation; validation and test batches are never augmented.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hatcl.data.registries import AUGMENTATIONS
from hatcl.functional.augment import horizontal_flip, padded_crop
from hatcl.generator import CheckpointedGenerator
from hatcl.validation import check_int


def crop(images: torch.Tensor, *, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Random crop after zero padding: an independent offset per image."""
    offsets = torch.randint(
        0, 2 * padding + 1, (images.shape[0], 2), generator=generator, device=images.device
    )
    return padded_crop(images, offsets=offsets, padding=padding)


def flip(images: torch.Tensor, *, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Horizontal flip of each image with probability 0.5."""
    del padding
    draws = torch.rand(images.shape[0], generator=generator, device=images.device)
    return horizontal_flip(images, flags=draws < 0.5)


class Augmentation(nn.Module):
    """The configured operations, in order, drawing from one checkpointed generator.

    Args:
        names: ``AUGMENTATIONS`` names (``crop``, ``flip``), applied in this order.
        crop_padding: zero pixels added per side before a random crop.
        input_shape: one sample's shape; the operations need images ``(C, H, W)``.
    """

    def __init__(
        self, *, names: Sequence[str], crop_padding: int = 4, input_shape: Sequence[int]
    ) -> None:
        super().__init__()
        self.names = tuple(
            AUGMENTATIONS.validate(name, parameter="data.augment entry") for name in names
        )
        self.crop_padding = check_int(crop_padding, parameter="data.crop_padding", low=0)
        if len(tuple(input_shape)) != 3:
            raise ValueError(
                f"data.augment={list(self.names)} needs image inputs (channels, height, width); "
                f"this data's samples have shape {tuple(input_shape)}: use data.augment=[]"
            )
        self._operations = [AUGMENTATIONS.get(name) for name in self.names]
        self.generator = CheckpointedGenerator()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        generator = self.generator.get(images.device)
        for operation in self._operations:
            images = operation(images, generator=generator, padding=self.crop_padding)
        return images


def build_augmentation(
    names: Sequence[str], *, crop_padding: int, input_shape: Sequence[int]
) -> Augmentation | None:
    """The augmentation of ``data.augment`` (``None`` when the list is empty)."""
    if not names:
        return None
    return Augmentation(names=names, crop_padding=crop_padding, input_shape=input_shape)
