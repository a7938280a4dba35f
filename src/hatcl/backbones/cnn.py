"""AlexNet-style convolutional backbone of the HAT paper, HAT-masked or plain."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hatcl.backbones.base import ActivationTap, ApplyMask, Backbone, BackboneOutput, WeightedLayer
from hatcl.backbones.conv_parts import check_image_shape, same_padding, setup_norms
from hatcl.backbones.registries import BATCH_NORM_MODES
from hatcl.masking.masker import HATMasker
from hatcl.masking.stage import Stage
from hatcl.validation import check_fraction, check_positive_ints


class CNNBackbone(Backbone):
    """Convolutional blocks followed by fully connected layers (Serra et al. 2018's AlexNet).

    Each conv block is conv -> batch norm -> HAT mask (per channel) -> ReLU -> 2x2 max pool ->
    dropout; each fully connected layer is linear -> batch norm -> HAT mask -> ReLU -> dropout.
    Convolutions are zero-padded to keep the spatial size ("same"), so only pooling shrinks it;
    pooling is skipped once a side is down to 1, so any input size works (8x8 digits too).
    The last conv output is flattened channel-major (``torch.flatten``): input feature ``j`` of
    the first linear layer belongs to channel ``j // (H * W)``, which its ``WeightedLayer``
    records as ``input_repeat = H * W``.

    Mask keys: ``conv1``.. ``convN`` (units = channels), ``fc1``.. ``fcM`` (units = neurons).
    h_l (the activation tap's output) is taken after the ReLU, before pooling and dropout.

    Args:
        input_shape: ``(channels, height, width)`` of one input sample.
        channels: output channels of each conv layer.
        kernel_sizes: kernel size of each conv layer (as many as ``channels``).
        fc_dims: units of each fully connected layer; the last is ``output_dim``.
        conv_dropout: dropout probability after each conv block.
        fc_dropout: dropout probability after each fully connected layer.
        batch_norm: ``none``, ``shared`` or ``independent`` (one per task).
        masked: whether the layers carry HAT masks (HAT family) or not (baselines).
    """

    sequential_taps = True
    per_sample_masks = True

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        channels: Sequence[int] = (64, 128, 256),
        kernel_sizes: Sequence[int] = (4, 3, 2),
        fc_dims: Sequence[int] = (2048, 2048),
        conv_dropout: float = 0.2,
        fc_dropout: float = 0.5,
        batch_norm: str = "none",
        masked: bool = True,
    ) -> None:
        super().__init__()
        in_channels, height, width = check_image_shape(input_shape, backbone="cnn")
        channels = check_positive_ints(channels, parameter="backbone.channels")
        kernel_sizes = check_positive_ints(kernel_sizes, parameter="backbone.kernel_sizes")
        fc_dims = check_positive_ints(fc_dims, parameter="backbone.fc_dims")
        if len(kernel_sizes) != len(channels):
            raise ValueError(
                f"backbone.kernel_sizes must have one entry per conv layer ({len(channels)} "
                f"channels given), got {list(kernel_sizes)}"
            )
        check_fraction(conv_dropout, parameter="backbone.conv_dropout")
        check_fraction(fc_dropout, parameter="backbone.fc_dropout")
        norm_class = BATCH_NORM_MODES.resolve(batch_norm)
        bias = batch_norm == "none"

        self.convs = nn.ModuleList()
        self.conv_norms = nn.ModuleList()
        self.paddings: tuple[tuple[int, int, int, int], ...] = tuple(
            map(same_padding, kernel_sizes)
        )
        pools: list[bool] = []
        previous = in_channels
        for out, kernel in zip(channels, kernel_sizes):
            self.convs.append(nn.Conv2d(previous, out, kernel, bias=bias))
            self.conv_norms.append(norm_class(num_features=out, dims=2))
            pools.append(min(height, width) >= 2)
            if pools[-1]:
                height, width = height // 2, width // 2
            previous = out
        self.pools = tuple(pools)
        self.flat_repeat = height * width

        dims = (channels[-1] * self.flat_repeat, *fc_dims)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.fc_norms = nn.ModuleList(norm_class(num_features=units) for units in fc_dims)
        self.conv_masks = nn.ModuleList(ApplyMask() for _ in channels)
        self.conv_relus = nn.ModuleList(nn.ReLU() for _ in channels)
        self.conv_pools = nn.ModuleList(
            nn.MaxPool2d(2) if pool else nn.Identity() for pool in pools
        )
        self.conv_dropouts = nn.ModuleList(nn.Dropout(conv_dropout) for _ in channels)
        self.fc_masks = nn.ModuleList(ApplyMask() for _ in fc_dims)
        self.fc_relus = nn.ModuleList(nn.ReLU() for _ in fc_dims)
        self.fc_dropouts = nn.ModuleList(nn.Dropout(fc_dropout) for _ in fc_dims)

        self.conv_keys = tuple(f"conv{i + 1}" for i in range(len(channels)))
        self.fc_keys = tuple(f"fc{i + 1}" for i in range(len(fc_dims)))
        self.taps = nn.ModuleDict({key: ActivationTap() for key in self.conv_keys + self.fc_keys})
        self.weighted_layers = _weighted_layers(self.conv_keys, self.fc_keys, self.flat_repeat)
        self.output_dim = fc_dims[-1]
        units = {**dict(zip(self.conv_keys, channels)), **dict(zip(self.fc_keys, fc_dims))}
        self.masker = HATMasker(unit_counts=units) if masked else None

    def setup_task(self, task_id: int) -> None:
        """Create per-task batch norms where configured."""
        setup_norms(self, task_id)

    def forward(
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> BackboneOutput:
        """Run the layers with the masks of ``stage`` (none when unmasked)."""
        masks = self.masker.masks(stage=stage, task_id=task_id, scale=scale) if self.masker else {}
        activations: dict[str, torch.Tensor] = {}
        hidden = x
        for index, key in enumerate(self.conv_keys):
            pre = self.convs[index](F.pad(hidden, self.paddings[index]))
            pre = self.conv_masks[index](
                self.conv_norms[index](pre, task_id=task_id), mask=masks.get(key)
            )
            hidden = self.taps[key](self.activation(key, self.conv_relus[index](pre), stage=stage))
            activations[key] = hidden
            hidden = self.conv_dropouts[index](self.conv_pools[index](hidden))
        hidden = torch.flatten(hidden, 1)
        for index, key in enumerate(self.fc_keys):
            pre = self.fc_norms[index](self.linears[index](hidden), task_id=task_id)
            pre = self.fc_masks[index](pre, mask=masks.get(key))
            hidden = self.taps[key](self.activation(key, self.fc_relus[index](pre), stage=stage))
            activations[key] = hidden
            hidden = self.fc_dropouts[index](hidden)
        return BackboneOutput(features=hidden, masks=masks, activations=activations)


def _weighted_layers(
    conv_keys: tuple[str, ...], fc_keys: tuple[str, ...], flat_repeat: int
) -> tuple[WeightedLayer, ...]:
    layers = [
        WeightedLayer(
            name=f"convs.{i}", mask_key=key, input_mask_key=conv_keys[i - 1] if i else None
        )
        for i, key in enumerate(conv_keys)
    ]
    previous = conv_keys[-1]
    for i, key in enumerate(fc_keys):
        layers.append(
            WeightedLayer(
                name=f"linears.{i}",
                mask_key=key,
                input_mask_key=previous,
                input_repeat=flat_repeat if i == 0 else 1,
            )
        )
        previous = key
    return tuple(layers)
