"""ResNet-18: block structure, shortcut mask keys, parameter coverage and counts."""

from __future__ import annotations

import pytest
import torch

from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.norms import NoNorm, PerTaskNorm, SharedNorm
from hatcl.backbones.registries import BACKBONES
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.masking.stage import Stage


def test_resnet18_has_twenty_weighted_layers_and_seventeen_mask_keys():
    backbone = ResNetBackbone(input_shape=(3, 8, 8), width=8, small_input=True)
    keys = list(backbone.unit_counts())
    assert len(backbone.weighted_layers) == 1 + 8 * 2 + 3  # stem, 8 blocks x 2 convs, 3 shortcuts
    assert keys[:3] == ["stem", "layer1_0_conv1", "layer1_0_out"]
    assert len(keys) == 17 and keys[-1] == "layer4_1_out"
    widths = [backbone.unit_counts()[f"layer{s}_1_out"] for s in (1, 2, 3, 4)]
    assert widths == [8, 16, 32, 64] and backbone.output_dim == 64


def test_shortcut_conv_shares_the_block_output_key_and_reads_the_block_input_key():
    backbone = ResNetBackbone(input_shape=(3, 8, 8), width=8, small_input=True)
    by_name = {layer.name: layer for layer in backbone.weighted_layers}
    shortcuts = [name for name in by_name if name.endswith("shortcut")]
    assert shortcuts == ["blocks.2.shortcut", "blocks.4.shortcut", "blocks.6.shortcut"]
    for name in shortcuts:
        block = name.rsplit(".", 1)[0]
        shortcut, conv1, conv2 = by_name[name], by_name[f"{block}.conv1"], by_name[f"{block}.conv2"]
        assert shortcut.mask_key == conv2.mask_key
        assert shortcut.input_mask_key == conv1.input_mask_key
        assert conv2.input_mask_key == conv1.mask_key
    assert by_name["blocks.2.shortcut"].input_mask_key == "layer1_1_out"
    assert by_name["blocks.2.shortcut"].mask_key == "layer2_0_out"
    # Identity blocks read the previous block's output key.
    assert by_name["blocks.1.conv1"].input_mask_key == "layer1_0_out"
    assert by_name["blocks.0.conv1"].input_mask_key == "stem"


@pytest.mark.parametrize("kind", ["cnn", "resnet18"])
@pytest.mark.parametrize("batch_norm", ["none", "independent"])
def test_every_backbone_parameter_is_a_weighted_layer_norm_or_embedding(kit, kind, batch_norm):
    backbone = kit.tiny_backbone(kind, batch_norm=batch_norm)
    backbone.setup_task(1)
    backbone.setup_task(2)
    covered = set()
    for _, module in backbone.layer_modules():
        covered.update(id(p) for p in module.parameters(recurse=False))
    for module in backbone.modules():
        if isinstance(module, (NoNorm, SharedNorm, PerTaskNorm)):
            covered.update(id(p) for p in module.parameters())
    covered.update(id(p) for p in backbone.masker.parameters())
    assert {id(p) for p in backbone.parameters()} == covered
    # Conv biases exist exactly when there is no batch norm; every weighted layer is protected.
    with_bias = [getattr(m, "bias", None) is not None for _, m in backbone.layer_modules()]
    if kind == "resnet18":
        assert all(with_bias) == (batch_norm == "none") and any(with_bias) == all(with_bias)


def test_parameter_count_matches_torchvision_resnet18_without_its_classifier():
    # torchvision's resnet18 has 11,689,512 parameters; its fc layer 512 * 1000 + 1000.
    backbone = ResNetBackbone(input_shape=(3, 224, 224), batch_norm="shared", masked=False)
    assert sum(p.numel() for p in backbone.parameters()) == 11_689_512 - 513_000
    assert backbone.output_dim == 512


@pytest.mark.parametrize(
    ("shape", "small_input", "stem_size", "last_size"),
    [
        ((3, 32, 32), True, 32, 4),  # 32 -> 32 -> 16 -> 8 -> 4
        ((3, 32, 32), False, 16, 1),  # stride-2 stem and max pool: 32 -> 16 -> 8 -> ... -> 1
        ((1, 28, 28), True, 28, 4),  # 28 -> 14 -> 7 -> 4
        ((1, 8, 8), True, 8, 1),
    ],
)
def test_stem_and_stage_sizes(shape, small_input, stem_size, last_size):
    backbone = ResNetBackbone(
        input_shape=shape, width=4, small_input=small_input, batch_norm="none", masked=False
    )
    output = backbone(torch.randn(2, *shape), task_id=1, stage=Stage.TRAIN)
    assert output.activations["stem"].shape[2] == stem_size
    assert output.activations["layer4_1_out"].shape[1:] == (32, last_size, last_size)
    assert torch.allclose(output.features, output.activations["layer4_1_out"].mean(dim=(2, 3)))
    assert output.masks == {}


def test_masked_output_carries_a_mask_and_activation_per_key():
    backbone = BACKBONES.get("resnet18")(input_shape=(3, 8, 8), width=4, small_input=True)
    backbone.setup_task(1)
    output = backbone(torch.randn(2, 3, 8, 8), task_id=1, stage=Stage.TRAIN, scale=2.0)
    assert list(output.masks) == list(backbone.unit_counts()) == list(output.activations)
    embedding = backbone.masker.embeddings["layer2_0_out"]
    assert torch.allclose(output.masks["layer2_0_out"], torch.sigmoid(2.0 * embedding))
    assert (output.activations["layer2_0_out"] >= 0).all()


def test_independent_batch_norm_needs_the_task_set_up():
    backbone = ResNetBackbone(input_shape=(3, 8, 8), width=4, small_input=True)
    with pytest.raises(ValueError, match="task 1 has no batch norm"):
        backbone(torch.randn(2, 3, 8, 8), task_id=1, stage=Stage.TRAIN, scale=1.0)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"input_shape": (784,)}, ValueError, "input_shape must be \\(channels, height, width\\)"),
        ({"input_shape": (3, 8, 8), "width": 0}, ValueError, "backbone.width"),
        ({"input_shape": (3, 8, 8), "num_blocks": (2, 0)}, ValueError, "backbone.num_blocks"),
        ({"input_shape": (3, 8, 8), "small_input": "yes"}, TypeError, "backbone.small_input"),
        ({"input_shape": (3, 8, 8), "batch_norm": "group"}, ValueError, "batch_norm"),
    ],
)
def test_invalid_options_are_rejected_with_the_parameter_name(options, error, message):
    with pytest.raises(error, match=message):
        ResNetBackbone(**options)


def test_cnn_and_resnet_are_registered():
    assert {"cnn", "resnet18"} <= set(BACKBONES.names())
    assert BACKBONES.get("cnn") is CNNBackbone and BACKBONES.get("resnet18") is ResNetBackbone
