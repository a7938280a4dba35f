"""Parameters HAT cannot mask: refused by default, or one copy per task, or frozen after task 1.

The invariant checked through the public API: under HAT, task 1's test logits after training
task 2 are bit-identical to those after task 1, with a layer norm, a batch norm after a residual
sum (as in pre-activation blocks) and raw parameters (a scale and a shift) in the network.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from wrap_helpers import train_task

import hatcl
from hatcl.algorithms.hat import HAT
from hatcl.masking.stage import Stage
from hatcl.wrap.unmasked import FrozenAfterFirst, PerTaskCopy

X = torch.randn(4, 6)


class Unmaskable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.norm = nn.Linear(6, 8), nn.LayerNorm(8)
        self.fc2, self.bn = nn.Linear(8, 8), nn.BatchNorm1d(8)
        self.scale, self.shift = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))

    def forward(self, x):
        h = torch.tanh(self.norm(self.fc1(x)))
        h = F.gelu(self.bn(self.fc2(h) + h))
        return h * self.scale + self.shift


LOOSE = "['bn.bias', 'bn.weight', 'norm.bias', 'norm.weight', 'scale', 'shift']"


def test_refuse_names_the_parameters_and_the_options():
    with pytest.raises(ValueError, match=re.escape(LOOSE)):
        hatcl.wrap(Unmaskable(), X)
    with pytest.raises(ValueError, match=r"unmasked=per_task\).*unmasked=freeze\).*exclude=\["):
        hatcl.wrap(Unmaskable(), X)


def test_an_unknown_mode_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="refuse, per_task, freeze.*'copy'"):
        hatcl.wrap(Unmaskable(), X, unmasked="copy")


def _logits_task1_before_and_after_task2(mode: str):
    torch.manual_seed(0)
    backbone = hatcl.wrap(Unmaskable(), X, unmasked=mode)
    learner = hatcl.Learner(backbone=backbone, algorithm=HAT())
    generator = torch.Generator().manual_seed(1)
    test = torch.randn(16, 6, generator=generator)
    snapshots = []
    for task_id in (1, 2):
        x = torch.randn(64, 6, generator=generator)
        y = (x[:, task_id] > 0).long()
        learner.start_task(task_id, num_classes=2, num_batches=4)
        train_task(learner, x, y, epochs=3, lr=0.05)
        with torch.no_grad():
            snapshots.append(learner.predict(test, task_id=1))
    return backbone, snapshots


@pytest.mark.parametrize("mode", ["per_task", "freeze"])
def test_task_1_logits_are_bit_identical_after_task_2(mode):
    backbone, (after_1, after_2) = _logits_task1_before_and_after_task2(mode)
    assert torch.equal(after_1, after_2)
    wrappers = [m for m in backbone.modules() if isinstance(m, PerTaskCopy | FrozenAfterFirst)]
    assert len(wrappers) == 4  # the layer norm, the batch norm, the scale, the shift


def test_per_task_copies_start_from_the_previous_tasks_values():
    backbone = hatcl.wrap(Unmaskable(), X, unmasked="per_task")
    backbone.setup_task(1)
    norm = next(
        m
        for m in backbone.modules()
        if isinstance(m, PerTaskCopy) and isinstance(m.initial, nn.LayerNorm)
    )
    with torch.no_grad():
        norm.copies["1"].weight.fill_(3.0)
    backbone.setup_task(2)
    assert torch.equal(norm.copies["2"].weight, torch.full((8,), 3.0))
    assert norm.copies["2"].weight is not norm.copies["1"].weight
    assert not norm.initial.weight.requires_grad and norm.copies["2"].weight.requires_grad


def test_freeze_stops_gradients_and_statistics_after_the_first_task():
    backbone = hatcl.wrap(Unmaskable(), X, unmasked="freeze")
    backbone.setup_task(1)
    frozen = [m for m in backbone.modules() if isinstance(m, FrozenAfterFirst)]
    assert all(p.requires_grad for m in frozen for p in m.parameters())
    backbone.setup_task(2)
    backbone.train()
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    bn = next(m.module for m in frozen if isinstance(m.module, nn.BatchNorm1d))
    before = bn.running_mean.clone()
    backbone(torch.randn(8, 6), task_id=2, stage=Stage.TRAIN, scale=2.0)
    assert torch.equal(bn.running_mean, before) and not bn.training


def test_the_mask_is_applied_again_after_the_layer_norm():
    """Units off for a task stay zero through the layer norm's shift (the hand-written net)."""
    net = Unmaskable()
    backbone = hatcl.wrap(net, X, unmasked="per_task")
    backbone.setup_task(1)
    backbone.eval()
    embeddings = {key: torch.where(torch.arange(8) % 2 == 0, 2.0, -2.0) for key in backbone.keys}
    for key, value in embeddings.items():
        backbone.masker.embeddings[key].data = value
    scale = 400.0
    out = backbone(X, task_id=1, stage=Stage.VALIDATION, scale=scale)
    m = {key: torch.sigmoid(scale * value) for key, value in embeddings.items()}
    h = torch.tanh(F.layer_norm(net.fc1(X) * m["fc1"], (8,), net.norm.weight, net.norm.bias))
    h = h * m["fc1"]  # applied again after the norm
    torch.testing.assert_close(out.activations["fc1"], net.fc1(X) * m["fc1"])
    fresh = backbone.network.get_submodule(
        next(
            n
            for n, mod in backbone.network.named_modules()
            if isinstance(mod, PerTaskCopy) and isinstance(mod.initial, nn.BatchNorm1d)
        )
    ).copies["1"]
    s = (net.fc2(h) + h) * m["fc2"]
    s = F.gelu(fresh(s)) * m["fc2"]
    torch.testing.assert_close(out.features, (s * net.scale) * m["fc2"] + net.shift)
