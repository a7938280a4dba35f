"""ResNet-18 backbone with HAT masks per conv channel, or plain.

How the masks sit in a residual block (BasicBlock: two 3x3 convs and a shortcut)::

    h1  = ReLU(m_conv1 * BN1(conv1(x)))
    z   = BN2(conv2(h1)) + shortcut(x)           shortcut: identity, or BN_s(conv_s(x)) (1x1)
    out = ReLU(m_out * z)

The block's output units are the channels of the sum ``z``. They have one mask key
(``<block>_out``), applied after the sum, shared by the two weighted layers that write into
them: conv2 (input key ``<block>_conv1``) and, where the block changes shape, the 1x1
downsample conv (input key = the block input's key). Both are ``WeightedLayer``s, so HAT
masks and protects the shortcut like any other layer. An identity shortcut has no parameters:
it adds the block input (already masked by the previous key) and the mask after the sum
decides which output channels are on.

Why HAT's invariant (earlier tasks' outputs unchanged) holds: under task tau's stored masks,
an output channel i with ``m_out[i] = 0`` is exactly 0. A channel with ``m_out[i] = 1`` is in the
cumulative mask, so its conv2 (and shortcut) weights from input channels also in the cumulative
mask get rate 0 and do not move; weights from channels outside the cumulative mask may move,
but those channels are 0 under tau. The identity term is the block input under tau's masks,
unchanged by induction over the blocks. Masking only conv2's branch before the sum would leave
the residual channels ungated (units that no mask controls, invisible to the sparsity term);
masking after the sum makes every output channel a proper HAT unit.

Batch norm (``none`` | ``shared`` | ``independent``) sits before each mask, so a masked-off
channel stays exactly 0; only ``none`` and ``independent`` keep earlier tasks unchanged
(shared running statistics and affine parameters move with every task).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import torch
from torch import nn

from hatcl.backbones.base import (
    ActivationTap,
    Add,
    ApplyMask,
    Backbone,
    BackboneOutput,
    WeightedLayer,
)
from hatcl.backbones.conv_parts import check_image_shape, setup_norms
from hatcl.backbones.registries import BATCH_NORM_MODES
from hatcl.masking.masker import HATMasker
from hatcl.masking.stage import Stage
from hatcl.validation import check_int, check_positive_ints

STEM_KEY = "stem"


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut, HAT-masked per channel (see the module docstring).

    Args:
        in_channels: channels of the block input.
        out_channels: channels of both convs and of the block output.
        stride: stride of the first conv (and of the downsample shortcut).
        norm_class: the batch-norm placement class.
        bias: whether the convs have a bias (only without batch norm).
        input_key: mask key of the block input's units.
        prefix: the block's mask-key prefix, e.g. ``layer2_0``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm_class: type[nn.Module],
        bias: bool,
        input_key: str,
        prefix: str,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=bias)
        self.norm1 = norm_class(num_features=out_channels, dims=2)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=bias)
        self.norm2 = norm_class(num_features=out_channels, dims=2)
        self.shortcut: nn.Conv2d | None = None
        self.shortcut_norm: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=bias)
            self.shortcut_norm = norm_class(num_features=out_channels, dims=2)
        self.input_key = input_key
        self.conv1_key = f"{prefix}_conv1"
        self.out_key = f"{prefix}_out"
        self.mask1, self.mask_out = ApplyMask(), ApplyMask()
        self.relu1, self.relu_out = nn.ReLU(), nn.ReLU()
        self.add = Add()
        self.taps = nn.ModuleDict({self.conv1_key: ActivationTap(), self.out_key: ActivationTap()})

    def weighted_layers(self, name: str) -> list[WeightedLayer]:
        """The block's weighted layers, named relative to the backbone (``name`` = its path)."""
        layers = [
            WeightedLayer(f"{name}.conv1", mask_key=self.conv1_key, input_mask_key=self.input_key),
            WeightedLayer(f"{name}.conv2", mask_key=self.out_key, input_mask_key=self.conv1_key),
        ]
        if self.shortcut is not None:
            layers.append(
                WeightedLayer(
                    f"{name}.shortcut", mask_key=self.out_key, input_mask_key=self.input_key
                )
            )
        return layers

    def forward(
        self,
        x: torch.Tensor,
        *,
        task_id: int,
        masks: Mapping[str, torch.Tensor],
        activations: dict[str, torch.Tensor],
        emit: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run the block; records h_l of both its mask keys in ``activations``.

        ``emit(key, h)`` (the backbone's :meth:`Backbone.activation` for the stage) maps h_l to
        the tensor the network uses in its place (identity unless a transform is installed).
        """
        emit = emit if emit is not None else _unchanged
        hidden = self.norm1(self.conv1(x), task_id=task_id)
        hidden = self.mask1(hidden, mask=masks.get(self.conv1_key))
        hidden = self.taps[self.conv1_key](emit(self.conv1_key, self.relu1(hidden)))
        activations[self.conv1_key] = hidden
        total = self.norm2(self.conv2(hidden), task_id=task_id)
        if self.shortcut is None:
            total = self.add(total, x)
        else:
            total = self.add(total, self.shortcut_norm(self.shortcut(x), task_id=task_id))
        out = self.mask_out(total, mask=masks.get(self.out_key))
        out = self.taps[self.out_key](emit(self.out_key, self.relu_out(out)))
        activations[self.out_key] = out
        return out


class ResNetBackbone(Backbone):
    """ResNet-18 (BasicBlocks, stages ``num_blocks``), HAT-masked per conv channel.

    Stem: 7x7 conv stride 2 and 3x3 max pool stride 2 (ImageNet), or with ``small_input`` a
    3x3 conv stride 1 and no pooling (32x32 images and smaller). Stage s has ``width * 2**s``
    channels and stride 2 from the second stage on. Features: the global average pool of the
    last block output (units = its channels), so ``output_dim = width * 2**(stages - 1)``.

    Mask keys: ``stem``, then per block ``layer<s>_<b>_conv1`` and ``layer<s>_<b>_out``
    (stage s from 1, block b from 0, as in torchvision's module names).

    Args:
        input_shape: ``(channels, height, width)`` of one input sample.
        width: channels of the first stage (64 in ResNet-18).
        num_blocks: BasicBlocks per stage (``[2, 2, 2, 2]`` is ResNet-18).
        small_input: 3x3 stride-1 stem without max pool, for small images.
        batch_norm: ``none``, ``shared`` or ``independent`` (one per task).
        masked: whether the layers carry HAT masks (HAT family) or not (baselines).
    """

    per_sample_masks = True

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        width: int = 64,
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        small_input: bool = False,
        batch_norm: str = "independent",
        masked: bool = True,
    ) -> None:
        super().__init__()
        in_channels = check_image_shape(input_shape, backbone="resnet18")[0]
        width = check_int(width, parameter="backbone.width", low=1)
        num_blocks = check_positive_ints(num_blocks, parameter="backbone.num_blocks")
        if not isinstance(small_input, bool):
            raise TypeError(f"backbone.small_input must be true or false, got {small_input!r}")
        norm_class = BATCH_NORM_MODES.resolve(batch_norm)
        bias = batch_norm == "none"
        self.small_input = small_input
        kernel, stride, padding = (3, 1, 1) if small_input else (7, 2, 3)
        self.stem = nn.Conv2d(in_channels, width, kernel, stride, padding, bias=bias)
        self.stem_norm = norm_class(num_features=width, dims=2)
        self.stem_mask = ApplyMask()
        self.stem_relu = nn.ReLU()
        self.stem_pool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.taps = nn.ModuleDict({STEM_KEY: ActivationTap()})
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.blocks = nn.ModuleList()
        units = {STEM_KEY: width}
        layers = [WeightedLayer("stem", mask_key=STEM_KEY, input_mask_key=None)]
        previous_key, previous_channels = STEM_KEY, width
        for stage, count in enumerate(num_blocks):
            channels = width * 2**stage
            for index in range(count):
                block = BasicBlock(
                    in_channels=previous_channels,
                    out_channels=channels,
                    stride=2 if stage > 0 and index == 0 else 1,
                    norm_class=norm_class,
                    bias=bias,
                    input_key=previous_key,
                    prefix=f"layer{stage + 1}_{index}",
                )
                layers.extend(block.weighted_layers(f"blocks.{len(self.blocks)}"))
                units[block.conv1_key] = channels
                units[block.out_key] = channels
                self.blocks.append(block)
                previous_key, previous_channels = block.out_key, channels
        self.weighted_layers = tuple(layers)
        self.output_dim = previous_channels
        self.masker = HATMasker(unit_counts=units) if masked else None

    def setup_task(self, task_id: int) -> None:
        """Create per-task batch norms where configured."""
        setup_norms(self, task_id)

    def activation_module(self, mask_key: str) -> nn.Module:
        """The tap module whose output is h_l of ``mask_key`` (the stem's or a block's)."""
        for taps in (self.taps, *(block.taps for block in self.blocks)):
            if mask_key in taps:
                return taps[mask_key]
        raise ValueError(
            f"backbone ResNetBackbone has no activation tap for mask key {mask_key!r}; "
            f"valid keys: {list(dict.fromkeys(w.mask_key for w in self.weighted_layers))}"
        )

    def forward(
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> BackboneOutput:
        """Run stem and blocks with the masks of ``stage`` (none when unmasked)."""
        masks = self.masker.masks(stage=stage, task_id=task_id, scale=scale) if self.masker else {}
        hidden = self.stem_mask(
            self.stem_norm(self.stem(x), task_id=task_id), mask=masks.get(STEM_KEY)
        )
        hidden = self.taps[STEM_KEY](self.activation(STEM_KEY, self.stem_relu(hidden), stage=stage))
        activations: dict[str, torch.Tensor] = {STEM_KEY: hidden}
        emit = partial(self.activation, stage=stage)
        hidden = self.stem_pool(hidden)
        for block in self.blocks:
            hidden = block(hidden, task_id=task_id, masks=masks, activations=activations, emit=emit)
        features = self.global_pool(hidden).flatten(1)
        return BackboneOutput(features=features, masks=masks, activations=activations)


def _unchanged(key: str, hidden: torch.Tensor) -> torch.Tensor:
    return hidden
