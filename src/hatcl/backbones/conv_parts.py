"""Small pieces shared by the convolutional backbones (input checks, masks, padding, norms)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from hatcl.backbones.norms import NoNorm, PerTaskNorm, SharedNorm
from hatcl.validation import check_positive_ints

_NORM_TYPES = (NoNorm, SharedNorm, PerTaskNorm)


def check_image_shape(input_shape: Sequence[int], *, backbone: str) -> tuple[int, int, int]:
    """Return ``input_shape`` as ``(C, H, W)``, or raise naming the parameter and the backbone."""
    shape = check_positive_ints(input_shape, parameter="input_shape")
    if len(shape) != 3:
        raise ValueError(
            f"input_shape must be (channels, height, width) for backbone {backbone!r}, got "
            f"{tuple(input_shape)!r}; use an image data source or the 'mlp' backbone"
        )
    return shape


def same_padding(kernel_size: int) -> tuple[int, int, int, int]:
    """Zero padding ``(left, right, top, bottom)`` keeping the spatial size at stride 1.

    Odd kernels pad symmetrically; even kernels pad one more on the right and bottom.
    """
    before = (kernel_size - 1) // 2
    after = kernel_size - 1 - before
    return (before, after, before, after)


def setup_norms(module: nn.Module, task_id: int) -> None:
    """Call ``setup_task`` on every batch-norm placement inside ``module``."""
    for child in module.modules():
        if isinstance(child, _NORM_TYPES):
            child.setup_task(task_id)
