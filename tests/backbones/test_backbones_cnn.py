"""The AlexNet-style CNN: shapes for any image size, layer descriptors, flatten mapping."""

from __future__ import annotations

import pytest
import torch

from hatcl.algorithms.hat_mechanism import to_weight_shape
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.registries import BACKBONES
from hatcl.functional.aggregation import aggregate_min, expand_input_units
from hatcl.masking.stage import Stage


@pytest.mark.parametrize(
    ("shape", "sizes", "repeat"),
    [
        ((1, 8, 8), [(8, 8), (4, 4), (2, 2)], 1),  # digits: 8 -> 4 -> 2 -> 1
        ((1, 28, 28), [(28, 28), (14, 14), (7, 7)], 9),  # Fashion-MNIST: ... -> 3
        ((3, 32, 32), [(32, 32), (16, 16), (8, 8)], 16),  # CIFAR: ... -> 4
        ((1, 2, 2), [(2, 2), (1, 1), (1, 1)], 1),  # pooling stops at 1x1
    ],
)
def test_any_input_size_gives_same_padded_conv_maps(shape, sizes, repeat):
    backbone = CNNBackbone(input_shape=shape, channels=(3, 5, 7), fc_dims=(11, 6))
    output = backbone(torch.randn(2, *shape), task_id=1, stage=Stage.TRAIN, scale=1.0)
    assert [tuple(output.activations[f"conv{i}"].shape[2:]) for i in (1, 2, 3)] == sizes
    assert backbone.flat_repeat == repeat
    assert backbone.linears[0].in_features == 7 * repeat
    assert output.features.shape == (2, 6) and backbone.output_dim == 6
    assert set(output.masks) == {"conv1", "conv2", "conv3", "fc1", "fc2"}


def test_weighted_layers_chain_units_and_record_the_flatten():
    backbone = CNNBackbone(input_shape=(1, 28, 28), channels=(3, 5, 7), fc_dims=(11, 6))
    described = [
        (w.name, w.mask_key, w.input_mask_key, w.input_repeat) for w in backbone.weighted_layers
    ]
    assert described == [
        ("convs.0", "conv1", None, 1),
        ("convs.1", "conv2", "conv1", 1),
        ("convs.2", "conv3", "conv2", 1),
        ("linears.0", "fc1", "conv3", 9),
        ("linears.1", "fc2", "fc1", 1),
    ]
    assert backbone.unit_counts() == {"conv1": 3, "conv2": 5, "conv3": 7, "fc1": 11, "fc2": 6}


def test_parameter_count_of_the_hat_paper_configuration():
    # (3, 32, 32): conv 3->64 k4, 64->128 k3, 128->256 k2 (with biases), pools to 4x4,
    # fc 4096->2048->2048.
    expected = (64 * 3 * 16 + 64) + (128 * 64 * 9 + 128) + (256 * 128 * 4 + 256)
    expected += (256 * 16 * 2048 + 2048) + (2048 * 2048 + 2048)
    backbone = CNNBackbone(input_shape=(3, 32, 32), masked=False)
    assert sum(p.numel() for p in backbone.parameters()) == expected == 12_795_328


def test_plain_twin_has_no_masks():
    backbone = BACKBONES.get("cnn")(
        input_shape=(1, 8, 8), channels=(2, 3, 4), fc_dims=(5, 5), masked=False
    )
    assert backbone.masker is None
    output = backbone(torch.randn(3, 1, 8, 8), task_id=1, stage=Stage.TEST)
    assert output.masks == {} and output.features.shape == (3, 5)
    assert set(output.activations) == {"conv1", "conv2", "conv3", "fc1", "fc2"}


def test_flatten_order_matches_the_parameter_wise_mask_of_the_first_linear():
    backbone = CNNBackbone(input_shape=(1, 16, 16), channels=(4, 6, 5), fc_dims=(3, 2))
    channels, repeat = 5, backbone.flat_repeat
    assert repeat == 4  # 16 -> 8 -> 4 -> 2, so 2 x 2 positions per channel
    # Oracle 1: torch.flatten of a map holding its channel index at every position.
    index_map = torch.arange(channels).float().reshape(1, channels, 1, 1).expand(1, channels, 2, 2)
    flat_channel = torch.flatten(index_map, 1)[0]
    assert torch.equal(flat_channel, expand_input_units(torch.arange(channels).float(), repeat=4))
    # The parameter-wise mask of fc1: column j is on iff channel j // 4 of conv3 is on.
    conv3 = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    units = {"conv3": conv3, "fc1": torch.ones(3)}
    fc1_layer = backbone.weighted_layers[3]
    parameter_mask = to_weight_shape(fc1_layer, backbone.linears[0].weight, units, aggregate_min)
    expected_columns = conv3[flat_channel.long()]
    assert torch.equal(parameter_mask, expected_columns.expand(3, 20))
    # Oracle 2: with that conv3 mask at test stage, exactly those flattened inputs are zero.
    ones = {key: torch.ones(n) for key, n in backbone.unit_counts().items()}
    backbone.masker.store.store(task_id=1, masks={**ones, "conv3": conv3})
    with torch.no_grad():
        backbone.convs[2].bias.fill_(5.0)  # every unmasked channel clearly active
    seen = {}
    backbone.linears[0].register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0]))
    backbone.eval()
    backbone(torch.randn(16, 1, 16, 16), task_id=1, stage=Stage.TEST)
    column_on = seen["x"].abs().sum(0) > 0
    assert torch.equal(column_on, expected_columns.bool())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_shape": (64,)}, "input_shape must be \\(channels, height, width\\)"),
        ({"input_shape": (1, 8, 8), "kernel_sizes": (3, 3)}, "backbone.kernel_sizes"),
        ({"input_shape": (1, 8, 8), "channels": (4, 0, 2)}, "backbone.channels"),
        ({"input_shape": (1, 8, 8), "fc_dropout": 1.0}, "backbone.fc_dropout"),
        ({"input_shape": (1, 8, 8), "batch_norm": "layer"}, "batch_norm"),
    ],
)
def test_invalid_options_are_rejected_with_the_parameter_name(options, message):
    with pytest.raises(ValueError, match=message):
        CNNBackbone(**options)
