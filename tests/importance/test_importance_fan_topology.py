"""fan_in / fan_out on the real backbones: two producers (ResNet shortcut) and a flatten (CNN).

The oracle sums the weights directly, by module name, with plain tensor sums written out here.
"""

import torch
from torch.testing import assert_close

from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage


def _importance(model: ContinualModel, name: str, inputs: torch.Tensor) -> dict:
    output = model(inputs, task_id=1, stage=Stage.TRAIN, scale=1.0)
    context = ImportanceContext(
        model=model,
        task_id=1,
        inputs=inputs,
        targets=torch.zeros(inputs.shape[0], dtype=torch.long),
        scale=1.0,
        output=output,
    )
    return IMPORTANCE_TYPES.get(name).compute(context)


def _model(backbone) -> ContinualModel:
    torch.manual_seed(0)
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    model.setup_task(task_id=1, num_classes=3)
    return model


def test_resnet_block_output_fan_in_sums_conv2_and_shortcut():
    backbone = ResNetBackbone(
        input_shape=(3, 8, 8), width=2, num_blocks=(1, 1), small_input=True, batch_norm="none"
    )
    model = _model(backbone)
    values = _importance(model, "input_weight_abs_sum", torch.randn(2, 3, 8, 8))
    keys = [k for k in values if k.startswith("layer2_") and k.endswith("_out")]
    assert len(keys) == 1, values.keys()
    conv2 = dict(backbone.named_modules())[_name(backbone, keys[0], "conv2")].weight
    shortcut = dict(backbone.named_modules())[_name(backbone, keys[0], "shortcut")].weight
    # per output channel: sum of |w| over (in, kh, kw) of conv2, plus that of the 1x1 shortcut
    expected = conv2.abs().sum(dim=(1, 2, 3)) + shortcut.abs().sum(dim=(1, 2, 3))
    assert_close(values[keys[0]], expected.detach())


def _name(backbone, key: str, part: str) -> str:
    for layer in backbone.weighted_layers:
        if layer.mask_key == key and layer.name.endswith(part):
            return layer.name
    raise AssertionError(f"no {part} producing {key}")


def test_cnn_fan_out_through_a_flatten_sums_each_channels_positions():
    backbone = CNNBackbone(
        input_shape=(1, 4, 4),
        channels=(3,),
        kernel_sizes=(3,),
        fc_dims=(5,),
        conv_dropout=0.0,
        fc_dropout=0.0,
    )
    model = _model(backbone)
    values = _importance(model, "output_weight_abs_sum", torch.randn(2, 1, 4, 4))
    layers = backbone.weighted_layers
    conv, linear = layers[0], layers[1]
    assert linear.input_mask_key == conv.mask_key and linear.input_repeat == 4  # 2x2 after pool
    weight = backbone.get_submodule(linear.name).weight.detach().abs()  # (5, 3 * 4)
    # channel c owns flattened features 4c .. 4c+3 (channel-major flatten)
    expected = torch.stack([weight[:, 4 * c : 4 * c + 4].sum() for c in range(3)])
    assert_close(values[conv.mask_key], expected)


def test_a_replaced_weight_is_read_again_not_served_from_the_cache():
    model = _model(
        CNNBackbone(input_shape=(1, 4, 4), channels=(3,), kernel_sizes=(3,), fc_dims=(5,))
    )
    inputs = torch.randn(2, 1, 4, 4)
    before = _importance(model, "output_weight_abs_sum", inputs)
    linear = model.backbone.get_submodule(model.backbone.weighted_layers[1].name)
    linear.weight = torch.nn.Parameter(torch.ones_like(linear.weight))
    after = _importance(model, "output_weight_abs_sum", inputs)
    key = model.backbone.weighted_layers[0].mask_key
    assert_close(after[key], torch.full((3,), 5.0 * 4))  # 5 rows x 4 positions of ones
    assert not torch.allclose(before[key], after[key])
