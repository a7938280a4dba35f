"""What wrap refuses, and the names its errors give."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hatcl
from hatcl.masking.stage import Stage

X = torch.randn(4, 6)


class WithLayerNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 5)
        self.norm = nn.LayerNorm(5)
        self.scale = nn.Parameter(torch.ones(5))

    def forward(self, x):
        return torch.relu(self.norm(self.fc(x))) * self.scale


def test_unprotected_parameters_are_refused_with_their_names():
    with pytest.raises(ValueError, match=r"\['norm.bias', 'norm.weight', 'scale'\]"):
        hatcl.wrap(WithLayerNorm(), X)


def test_excluded_or_frozen_parameters_are_accepted():
    net = WithLayerNorm()
    backbone = hatcl.wrap(net, X, exclude=["norm", "scale"])
    assert [layer.name for layer in backbone.weighted_layers] == ["network.fc"]
    net.scale.requires_grad_(False)
    backbone = hatcl.wrap(net, X, exclude=["norm"])
    assert [layer.name for layer in backbone.weighted_layers] == ["network.fc"]


def test_unknown_exclude_names_the_valid_modules():
    with pytest.raises(ValueError, match=r"\['nope'\].*\['fc', 'norm', 'scale'\]"):
        hatcl.wrap(WithLayerNorm(), X, exclude=["nope"])


class CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


def test_a_module_with_weights_called_twice_is_refused():
    with pytest.raises(ValueError, match=r"\['fc'\] are called more than once"):
        hatcl.wrap(CalledTwice(), X)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


def test_untraceable_control_flow_says_what_to_change():
    with pytest.raises(TypeError, match="control flow that depends on tensor values"):
        hatcl.wrap(DataDependent(), X)


class FunctionalWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.w = nn.Parameter(torch.randn(3, 6))

    def forward(self, x):
        return F.linear(torch.relu(self.fc(x)), self.w)


def test_weights_used_through_functional_are_refused():
    with pytest.raises(ValueError, match=r"\['w'\]"):
        hatcl.wrap(FunctionalWeight(), X)


class ConcatOtherDim(nn.Module):
    """Two layers' units side by side along the positions, not the channels."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(1, 3, 3, padding=1), nn.Conv1d(1, 3, 3, padding=1)
        self.c = nn.Linear(3 * 12, 2)

    def forward(self, x):
        x = x.unsqueeze(1)
        joined = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=2)
        return self.c(joined.flatten(1))


def test_concatenating_two_masks_units_along_another_dim_is_refused_at_the_cat():
    with pytest.raises(
        ValueError, match=r"function cat\(\) \(node 'cat'\) combines tensors of different units"
    ):
        hatcl.wrap(ConcatOtherDim(), X)


class PostActivationSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 4), nn.Linear(6, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.c(torch.relu(self.a(x)) + torch.relu(self.b(x)))


def test_a_sum_after_the_nonlinearities_is_refused():
    with pytest.raises(ValueError, match="combines tensors of different units"):
        hatcl.wrap(PostActivationSum(), X)


class Sequence3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(x.unsqueeze(1).expand(-1, 3, -1))


def test_returning_token_dims_is_refused_saying_how_to_reduce_them():
    with pytest.raises(ValueError, match=r"units along dims \(2,\).*x\[:, 0\].*x.mean\(1\)"):
        hatcl.wrap(Sequence3d(), X)


class PreActivationSum(nn.Module):
    """Two layers summed before their shared nonlinearity: one unit group, one mask."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 4), nn.Linear(6, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.c(torch.relu(self.a(x) + self.b(x)))


def test_a_sum_before_the_nonlinearity_shares_one_mask():
    backbone = hatcl.wrap(PreActivationSum(), X)
    assert [(w.name, w.mask_key, w.input_mask_key) for w in backbone.weighted_layers] == [
        ("network.a", "a", None),
        ("network.b", "a", None),
        ("network.c", "c", "a"),
    ]
    backbone.setup_task(1)
    backbone.masker.embeddings["a"].data = torch.tensor([5.0, -5.0, 5.0, -5.0])
    out = backbone(X, task_id=1, stage=Stage.TRAIN, scale=100.0)
    hidden = out.activations["a"]
    expected = torch.relu(backbone.network.a(X) + backbone.network.b(X)) * torch.tensor(
        [1.0, 0.0, 1.0, 0.0]
    )
    torch.testing.assert_close(hidden, expected)


def test_the_users_network_is_not_modified():
    net = WithLayerNorm()
    before = [name for name, _ in net.named_modules()]
    net.scale.requires_grad_(False)
    backbone = hatcl.wrap(net, X, exclude=["norm"])
    assert [name for name, _ in net.named_modules()] == before
    assert backbone.network.fc.weight is not net.fc.weight
    torch.testing.assert_close(backbone.network.fc.weight, net.fc.weight)


class MixingReshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv1d(1, 4, 3), nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x.unsqueeze(1)))  # (batch, 4, 4)
        return self.fc(h.reshape(h.shape[0], 2, 8))


class UnitSlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(2, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))[:, :2])


class WrongDim(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv1d(1, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x.unsqueeze(1)))).mean(1)


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(2, 4, 1), nn.Conv1d(4, 4, 1, groups=2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.reshape(x.shape[0], 2, 3)))).flatten(1)


REFUSED = [
    (
        MixingReshape,
        r"layer 'fc' .*method .reshape\(\) \(node 'reshape'\) reshapes \(4, 4, 4\) "
        r"to \(4, 2, 8\), mixing units",
    ),
    (UnitSlice, r"layer 'b' .*function getitem\(\) \(node 'getitem'\): wrap cannot tell"),
    (WrongDim, r"layer 'fc' reads units along dims \(1,\) .* features are dim 2; permute"),
    (Grouped, r"layer 'b' is a grouped convolution \(groups=2\)"),
]


@pytest.mark.parametrize(("net", "message"), REFUSED, ids=[n.__name__ for n, _ in REFUSED])
def test_refusals_name_the_node_where_tracking_stops(net, message):
    with pytest.raises(ValueError, match=message):
        hatcl.wrap(net(), X)


def test_refusals_from_the_command_line_name_its_keys():
    from hatcl.wrap.graph import CLI_NAMES

    with pytest.raises(ValueError, match=r"backbone\.unmasked=per_task.*backbone\.exclude=\["):
        hatcl.wrap(WithLayerNorm(), X, option_names=CLI_NAMES)
    with pytest.raises(TypeError, match=r"passed in backbone\.exclude=\[\.\.\.\]"):
        hatcl.wrap(DataDependent(), X, option_names=CLI_NAMES)
