"""Lowering a backbone to task T's compact network of plain torch modules (one per type).

Each lowering returns the features network and the indices of the backbone features it keeps
(the columns of the task head that stay; ``None``: all). The registry is keyed by the
backbone's class name; a backbone without masks keeps every unit (its network is exported
unpruned).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from hatcl.product.prune import (
    ChannelGather,
    expand,
    gather_index,
    kept_units,
    optional_norm,
    slice_layer,
)
from hatcl.registry import Registry


@dataclass(frozen=True)
class Lowered:
    """Task T's features network and the backbone features it keeps (``None``: all)."""

    features: nn.Module
    kept_features: torch.Tensor | None


LOWERINGS = Registry("backbone type")
LOWERINGS.add("MLPBackbone", "hatcl.product.lower:lower_mlp", summary="built-in MLP")
LOWERINGS.add("CNNBackbone", "hatcl.product.lower:lower_cnn", summary="built-in CNN")
LOWERINGS.add("ResNetBackbone", "hatcl.product.lower:lower_resnet", summary="built-in ResNet")
LOWERINGS.add(
    "PerTaskBackbones", "hatcl.product.lower:lower_per_task", summary="one backbone per task"
)
LOWERINGS.add(
    "WrappedBackbone", "hatcl.product.lower_wrapped:lower_wrapped", summary="hatcl.wrap networks"
)


def lower(backbone: nn.Module, *, task_id: int, prune: bool = True) -> Lowered:
    """Task ``task_id``'s compact features network of ``backbone`` (``prune=False``: every
    unit kept, the same network unpruned).

    Raises:
        ValueError: no lowering is registered for the backbone's type (the message lists them).
    """
    name = type(backbone).__name__
    if name not in LOWERINGS:
        raise ValueError(
            f"export has no lowering for backbone type {name!r}; supported types: "
            f"{', '.join(LOWERINGS.names())} (a network of your own: wrap it with hatcl.wrap)"
        )
    return LOWERINGS.get(name)(backbone, task_id=task_id, prune=prune)


def lower_per_task(backbone: nn.Module, *, task_id: int, prune: bool = True) -> Lowered:
    """One backbone per task (``independent``): lower task ``task_id``'s own backbone."""
    return lower(backbone.backbone(task_id), task_id=task_id, prune=prune)


def lower_mlp(backbone: nn.Module, *, task_id: int, prune: bool = True) -> Lowered:
    """Flatten, then per hidden layer: pruned Linear, pruned batch norm, ReLU."""
    kept = kept_units(backbone, task_id, prune=prune)
    layers: list[nn.Module] = [nn.Flatten(1)]
    previous: torch.Tensor | None = None
    for index, key in enumerate(backbone.keys):
        rows = kept[key]
        layers.append(slice_layer(backbone.linears[index], rows=rows, columns=previous))
        layers.append(optional_norm(backbone.norms[index], task_id, rows))
        layers.append(nn.ReLU())
        previous = rows
    return Lowered(features=_sequential(layers), kept_features=previous)


def lower_cnn(backbone: nn.Module, *, task_id: int, prune: bool = True) -> Lowered:
    """Per conv block: zero padding, pruned conv and norm, ReLU, pooling; then the fc layers.

    The first fc layer reads the flattened channels channel-major, so its kept input columns
    are each kept channel's ``H * W`` features (``input_repeat``).
    """
    kept = kept_units(backbone, task_id, prune=prune)
    layers: list[nn.Module] = []
    previous: torch.Tensor | None = None
    for index, key in enumerate(backbone.conv_keys):
        rows = kept[key]
        layers.append(nn.ZeroPad2d(backbone.paddings[index]))
        layers.append(slice_layer(backbone.convs[index], rows=rows, columns=previous))
        layers.append(optional_norm(backbone.conv_norms[index], task_id, rows))
        layers.append(nn.ReLU())
        if backbone.pools[index]:
            layers.append(nn.MaxPool2d(2))
        previous = rows
    layers.append(nn.Flatten(1))
    previous = expand(previous, backbone.flat_repeat)
    for index, key in enumerate(backbone.fc_keys):
        rows = kept[key]
        layers.append(slice_layer(backbone.linears[index], rows=rows, columns=previous))
        layers.append(optional_norm(backbone.fc_norms[index], task_id, rows))
        layers.append(nn.ReLU())
        previous = rows
    return Lowered(features=_sequential(layers), kept_features=previous)


class ResidualBlock(nn.Module):
    """A pruned BasicBlock: ``relu(branch(x) + shortcut(x))`` of plain torch modules.

    Args:
        branch: conv1, norm1, ReLU, conv2, norm2 (pruned).
        shortcut: the pruned 1x1 conv and norm, a :class:`ChannelGather` taking the kept input
            channels to the kept output channels, or an identity.
    """

    def __init__(self, *, branch: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


def lower_resnet(backbone: nn.Module, *, task_id: int, prune: bool = True) -> Lowered:
    """Stem, pruned residual blocks, global average pool.

    A block's conv2 and downsample shortcut write the same units (one mask, ``<block>_out``):
    both keep those rows. An identity shortcut adds the block input's kept channels to the
    output's kept channels through a :class:`ChannelGather` (a channel kept at the output but
    pruned at the input adds the 0 it was).
    """
    kept = kept_units(backbone, task_id, prune=prune)
    stem = kept[backbone.weighted_layers[0].mask_key]
    layers: list[nn.Module] = [
        slice_layer(backbone.stem, rows=stem, columns=None),
        optional_norm(backbone.stem_norm, task_id, stem),
        nn.ReLU(),
        copy.deepcopy(backbone.stem_pool),
    ]
    previous = stem
    for block in backbone.blocks:
        inner, out = kept[block.conv1_key], kept[block.out_key]
        branch = _sequential(
            [
                slice_layer(block.conv1, rows=inner, columns=previous),
                optional_norm(block.norm1, task_id, inner),
                nn.ReLU(),
                slice_layer(block.conv2, rows=out, columns=inner),
                optional_norm(block.norm2, task_id, out),
            ]
        )
        layers.append(
            ResidualBlock(branch=branch, shortcut=_shortcut(block, task_id, previous, out))
        )
        previous = out
    layers.extend([nn.AdaptiveAvgPool2d(1), nn.Flatten(1)])
    return Lowered(features=_sequential(layers), kept_features=previous)


def _shortcut(block: nn.Module, task_id: int, source, target) -> nn.Module:
    if block.shortcut is not None:
        return _sequential(
            [
                slice_layer(block.shortcut, rows=target, columns=source),
                optional_norm(block.shortcut_norm, task_id, target),
            ]
        )
    index = gather_index(source, target, units=block.conv2.out_channels)
    return nn.Identity() if index is None else ChannelGather(index)


def _sequential(layers: list[nn.Module]) -> nn.Sequential:
    """The layers without identities (a norm placement without norm)."""
    return nn.Sequential(*(layer for layer in layers if type(layer) is not nn.Identity))
