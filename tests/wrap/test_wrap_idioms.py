"""The common convnet idioms, generated as a matrix and checked against hand-masked networks.

Every network of tests/wrap/idiom_nets.py is wrapped; its forward (features and h_l) must equal
the same network with the masks written out by hand (spec section 1: ``m = sigmoid(s * e)`` on the
pre-activation, after a batch norm, broadcast over the positions; a fresh batch norm per task),
and its weighted layers must record the input units and the positions per unit counted by hand
from the conv arithmetic ``(side - kernel) // stride + 1``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from idiom_nets import BLOCKS, CHANNELS, KERNEL, SIDE, TAILS, ConvTail, Shortcut
from wrap_helpers import SCALE, set_distinct_embeddings

import hatcl
from hatcl.masking.stage import Stage


def _per_unit(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(1, -1, *([1] * (like.dim() - 2)))


def _fresh_norm(h: torch.Tensor) -> torch.Tensor:
    """A newly built batch norm in training mode: batch statistics, weight 1, bias 0."""
    return F.batch_norm(h, None, None, training=True, eps=1e-5)


def _hand_tail(h: torch.Tensor, tail: str, dim: int) -> torch.Tensor:
    spatial = tuple(range(2, 2 + dim))
    if tail in ("mean", "avg_pool_module"):
        return h.mean(spatial)
    if tail in ("amax", "max_pool_module"):
        return h.amax(spatial)
    if tail == "adaptive_2_module":
        pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
        return pool[dim](h, 2).reshape(h.shape[0], -1)
    return h.reshape(h.shape[0], -1)


MATRIX = list(
    itertools.product((1, 2, 3), (False, True), (False, True), (1, 2), TAILS, (False, True))
)


@pytest.mark.parametrize(("dim", "norm", "act", "stride", "tail", "linear"), MATRIX)
def test_conv_tail_idioms_equal_the_hand_masked_network(dim, norm, act, stride, tail, linear):
    torch.manual_seed(0)
    net = ConvTail(dim=dim, norm=norm, act=act, stride=stride, tail=tail, linear=linear)
    x = torch.randn(3, 2, *([SIDE[dim]] * dim))
    backbone = hatcl.wrap(net, x)
    side = (SIDE[dim] - KERNEL) // stride + 1
    positions = {"adaptive_2_module": 2**dim, "mean": 1, "amax": 1}.get(tail, side**dim)
    if tail in ("avg_pool_module", "max_pool_module"):
        positions = 1
    expected = [("network.conv", "conv", None, 1)]
    if linear:
        expected.append(("network.fc", "fc", "conv", positions))
    assert [
        (w.name, w.mask_key, w.input_mask_key, w.input_repeat) for w in backbone.weighted_layers
    ] == expected
    assert backbone.output_dim == (5 if linear else CHANNELS * positions)
    backbone.setup_task(1)
    backbone.train()
    masks = set_distinct_embeddings(backbone)
    out = backbone(x, task_id=1, stage=Stage.TRAIN, scale=SCALE)

    h = net.conv(x)
    h = _fresh_norm(h) if norm else h
    h = h * _per_unit(masks["conv"], h)
    h = torch.relu(h) if act else h
    torch.testing.assert_close(out.activations["conv"], h)
    features = _hand_tail(h, tail, dim)
    if linear:
        features = torch.relu(net.fc(features) * masks["fc"])
        torch.testing.assert_close(out.activations["fc"], features)
    torch.testing.assert_close(out.features, features)


SHORTCUTS = list(itertools.product(BLOCKS, ("before", "after")))


@pytest.mark.parametrize(("block", "pool"), SHORTCUTS)
def test_identity_shortcut_before_the_nonlinearity_shares_the_blocks_mask(block, pool):
    torch.manual_seed(0)
    net = Shortcut(block=block, combine="add_then_relu", pool=pool)
    x = torch.randn(3, 1, 8, 8)
    backbone = hatcl.wrap(net, x)
    last = "conv2" if block == "two_convs" else "conv1"
    expected = [("network.stem", "stem", None, 1)]
    expected += [("network.conv1", "conv1", "stem", 1)]
    if block == "two_convs":
        expected.append(("network.conv2", "conv2", "conv1", 1))
    expected.append(("network.fc", "fc", last, 16))
    assert [
        (w.name, w.mask_key, w.input_mask_key, w.input_repeat) for w in backbone.weighted_layers
    ] == expected
    backbone.setup_task(1)
    backbone.train()
    masks = set_distinct_embeddings(backbone)
    out = backbone(x, task_id=1, stage=Stage.TRAIN, scale=SCALE)

    h = net.stem(x)
    h = torch.relu(_fresh_norm(h) * _per_unit(masks["stem"], h))
    h = F.max_pool2d(h, 2) if pool == "before" else h
    f = net.conv1(h)
    f = _fresh_norm(f) if block == "conv_bn" else f
    if block == "two_convs":
        f = net.conv2(torch.relu(f * _per_unit(masks["conv1"], f)))
    h = torch.relu((h + f) * _per_unit(masks[last], f))
    torch.testing.assert_close(out.activations[last], h)
    h = F.max_pool2d(h, 2) if pool == "after" else h
    expected_features = net.fc(h.reshape(3, -1)) * masks["fc"]
    torch.testing.assert_close(out.features, expected_features)


@pytest.mark.parametrize(("block", "pool"), SHORTCUTS)
def test_a_sum_after_the_blocks_nonlinearity_is_refused_at_the_addition(block, pool):
    net = Shortcut(block=block, combine="relu_then_add", pool=pool)
    message = r"function add\(\) \(node 'add'\) combines .*write relu\(x \+ f\(x\)\)"
    with pytest.raises(ValueError, match=message):
        hatcl.wrap(net, torch.randn(3, 1, 8, 8))
