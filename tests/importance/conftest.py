"""Tiny fixed models for importance tests: a masked MLP and a small conv backbone.

The conv backbone follows the Backbone contract and has two weighted layers on one mask key (a
main conv and a 1x1 shortcut conv, like a ResNet block) feeding a linear layer through a flatten.
"""

import pytest
import torch
from torch import nn

from hatcl.backbones.base import ActivationTap, Backbone, BackboneOutput, WeightedLayer
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.masker import HATMasker
from hatcl.masking.stage import Stage


class TinyConvBackbone(Backbone):
    """conv_a (1->2, 2x2) + shortcut conv_b (1->2, 1x1) -> mask c1 -> ReLU -> flatten -> fc."""

    def __init__(self, *, input_shape=(1, 3, 3), masked: bool = True) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(1, 2, kernel_size=2)
        self.conv_b = nn.Conv2d(1, 2, kernel_size=1)
        self.fc = nn.Linear(8, 2)
        self.weighted_layers = (
            WeightedLayer(name="conv_a", mask_key="c1", input_mask_key=None),
            WeightedLayer(name="conv_b", mask_key="c1", input_mask_key=None),
            WeightedLayer(name="fc", mask_key="fc", input_mask_key="c1", input_repeat=4),
        )
        self.output_dim = 2
        self.masker = HATMasker(unit_counts={"c1": 2, "fc": 2}) if masked else None
        self.taps = nn.ModuleDict({"c1": ActivationTap(), "fc": ActivationTap()})

    def forward(self, x, *, task_id: int, stage: Stage, scale=None) -> BackboneOutput:
        masks = self.masker.masks(stage=stage, task_id=task_id, scale=scale) if self.masker else {}
        pre = self.conv_a(x) + self.conv_b(x[:, :, :2, :2])
        if masks:
            pre = pre * masks["c1"][None, :, None, None]
        h1 = self.taps["c1"](torch.relu(pre))
        pre = self.fc(h1.flatten(1))
        if masks:
            pre = pre * masks["fc"]
        h2 = self.taps["fc"](torch.relu(pre))
        return BackboneOutput(features=h2, masks=masks, activations={"c1": h1, "fc": h2})


def make_model(backbone: Backbone, *, tasks: int = 1, classes: int = 2) -> ContinualModel:
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=2))
    for task_id in range(1, tasks + 1):
        model.setup_task(task_id=task_id, num_classes=classes)
    return model


@pytest.fixture
def mlp_model():
    torch.manual_seed(0)
    return make_model(MLPBackbone(input_shape=(3,), hidden_dims=(2, 2), masked=True))


@pytest.fixture
def conv_model():
    torch.manual_seed(0)
    return make_model(TinyConvBackbone())
