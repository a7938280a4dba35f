"""Pruning one task's subnetwork: hand-counted sizes, residual groups, flatten after a conv.

Oracles: parameter and multiply-add counts written out by hand from the planted masks; outputs
against the masked model's own forward (``model(x, task_id=T, stage=TEST)``), which runs every
unit and multiplies by the mask.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hatcl
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.product.export import task_network
from hatcl.product.prune import ChannelGather, count_macs, count_parameters, gather_index


def _model(backbone, masks_per_task, num_classes=3):
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    for task_id, masks in enumerate(masks_per_task, start=1):
        model.setup_task(task_id=task_id, num_classes=num_classes)
        planted = {key: torch.tensor(value, dtype=torch.float32) for key, value in masks.items()}
        backbone.masker.store.store(task_id=task_id, masks=planted)
    generator = torch.Generator().manual_seed(3)
    for module in model.modules():  # statistics and affine values that are not identities
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.normal_(generator=generator)
            module.bias.data.normal_(generator=generator)
    return model.eval()


def _random_masks(backbone, seed):
    generator = torch.Generator().manual_seed(seed)
    return {
        key: (torch.rand(units, generator=generator) > 0.4).float().tolist()
        for key, units in backbone.masker.unit_counts.items()
    }


def _assert_same_function(model, task_id, x):
    expected = model(x, task_id=task_id, stage=Stage.TEST).logits
    got = task_network(model, task_id=task_id)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_mlp_parameter_and_mac_count_by_hand():
    backbone = MLPBackbone(input_shape=(5,), hidden_dims=(4, 3))
    model = _model(backbone, [{"fc1": [1, 0, 1, 0], "fc2": [0, 1, 0]}], num_classes=2)
    network = task_network(model, task_id=1)
    # fc1: 2 kept rows x 5 inputs + 2 biases; fc2: 1 row x 2 kept inputs + 1; head: 2 x 1 + 2
    assert count_parameters(network) == (2 * 5 + 2) + (1 * 2 + 1) + (2 * 1 + 2)
    assert count_macs(network, torch.zeros(1, 5)) == 2 * 5 + 1 * 2 + 2 * 1
    unpruned = task_network(model, task_id=1, prune=False)
    assert count_parameters(unpruned) == (4 * 5 + 4) + (3 * 4 + 3) + (2 * 3 + 2)
    _assert_same_function(model, 1, torch.randn(7, 5))


def test_cnn_flatten_after_conv_keeps_each_channels_positions():
    backbone = CNNBackbone(
        input_shape=(1, 4, 4),
        channels=(3,),
        kernel_sizes=(3,),
        fc_dims=(5,),
        conv_dropout=0.0,
        fc_dropout=0.0,
        batch_norm="independent",
    )
    model = _model(backbone, [{"conv1": [1, 0, 1], "fc1": [1, 1, 0, 0, 1]}], num_classes=2)
    network = task_network(model, task_id=1)
    linear = [m for m in network.modules() if isinstance(m, nn.Linear)][0]
    # 2 kept channels, each 2 x 2 positions after the 2x2 pool: input columns 0-3 and 8-11
    full = backbone.linears[0].weight
    torch.testing.assert_close(linear.weight, full[[0, 1, 4], :][:, [0, 1, 2, 3, 8, 9, 10, 11]])
    conv = 2 * 1 * 9  # kept channels x input channels x kernel (no bias under batch norm)
    norms = 2 * 2 + 3 * 2  # weight and bias of the kept entries of both norms
    fc = 3 * 2 * 4 + 3 + 2 * 3 + 2  # fc1 rows x (kept channels x positions) + bias; head
    assert count_parameters(network) == conv + norms + fc
    _assert_same_function(model, 1, torch.randn(6, 1, 4, 4))


@pytest.mark.parametrize("seed", [0, 1])
def test_resnet_identity_and_downsample_shortcuts(seed):
    backbone = ResNetBackbone(input_shape=(3, 8, 8), width=4, num_blocks=(2, 2), small_input=True)
    model = _model(backbone, [_random_masks(backbone, seed), _random_masks(backbone, seed + 7)])
    for task_id in (1, 2):
        _assert_same_function(model, task_id, torch.randn(4, 3, 8, 8))
    assert count_parameters(task_network(model, task_id=1)) < count_parameters(
        task_network(model, task_id=1, prune=False)
    )


class _Residual(nn.Module):
    """An identity residual, a residual group of two convs sharing a mask, flatten to a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c2, self.b2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c3, self.b3 = nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5)
        self.shortcut = nn.Conv2d(4, 5, 1)
        self.fc = nn.Linear(5 * 2 * 2, 6)

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        h = torch.relu(self.b2(self.c2(h)) + h)
        h = torch.relu(self.b3(self.c3(h)) + self.shortcut(h))
        return torch.relu(self.fc(torch.flatten(nn.functional.max_pool2d(h, 2), 1)))


def test_wrapped_residual_group_is_pruned_as_one_unit_set():
    backbone = hatcl.wrap(_Residual(), torch.randn(2, 1, 4, 4))
    assert [layer.mask_key for layer in backbone.weighted_layers] == ["c1", "c2", "c3", "c3", "fc"]
    masks = {"c1": [1, 1, 0, 0], "c2": [0, 1, 1, 0], "c3": [1, 0, 0, 1, 1], "fc": [1] * 3 + [0] * 3}
    model = _model(backbone, [masks])
    network = task_network(model, task_id=1)
    # c1: 2x1x9+2 | c2: 2 rows x 2 kept inputs x 9 + 2 | c3 and the shortcut conv share the 3
    # kept rows of c3, each reading c2's 2 kept channels: 3x2x9+3 and 3x2x1+3 | norms: 2 x kept
    # | fc: 3 rows x 3 channels x 4 positions + 3 | head: 3 classes x 3 + 3
    convs = (2 * 9 + 2) + (2 * 2 * 9 + 2) + (3 * 2 * 9 + 3) + (3 * 2 + 3)
    norms = 2 * (2 + 2 + 3)
    assert count_parameters(network) == convs + norms + (3 * 12 + 3) + (3 * 3 + 3)
    _assert_same_function(model, 1, torch.randn(5, 1, 4, 4))


def test_channel_gather_zero_fills_units_pruned_at_the_input():
    # kept input units [0, 2, 3] of 4, kept output units [1, 2, 3]: unit 1 was 0 at the input
    index = gather_index(torch.tensor([0, 2, 3]), torch.tensor([1, 2, 3]), units=4)
    assert index.tolist() == [3, 1, 2]
    x = torch.tensor([[10.0, 20.0, 30.0]])
    assert ChannelGather(index)(x).tolist() == [[0.0, 20.0, 30.0]]
    assert gather_index(None, None, units=3) is None


class _Shifted(nn.Module):
    """A masked unit made nonzero after its mask (``h - 0.25``): the next layer reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 2 * 2, 4)

    def forward(self, x):
        h = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2) - 0.25
        return torch.relu(self.fc(torch.flatten(h, 1)))


def test_wrapped_ops_that_do_not_keep_zero_units_get_the_full_width():
    backbone = hatcl.wrap(_Shifted(), torch.randn(2, 1, 4, 4))
    model = _model(backbone, [{"conv": [1, 0, 1], "fc": [0, 1, 1, 1]}])
    network = task_network(model, task_id=1)
    # conv: 2 kept channels x 9 + 2; fc: 3 rows x all 3 x 4 inputs (the pruned channel is
    # -0.25, not 0, and the layer reads it) + 3; head: 3 classes x 3 + 3
    assert count_parameters(network) == (2 * 9 + 2) + (3 * 12 + 3) + (3 * 3 + 3)
    _assert_same_function(model, 1, torch.randn(5, 1, 4, 4))
