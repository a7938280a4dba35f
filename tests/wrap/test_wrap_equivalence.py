"""wrap of plain copies of hatcl's MLP, CNN and ResNet-18 equals the hand-written backbones.

Same weighted layers and unit topology, same masks, same forward outputs at every stage and,
for a fixed seed, the same accuracy matrix from the runner (each HAT-family algorithm at least
once; FG-AdaHAT with an attribution and a non-attribution importance type).
"""

from __future__ import annotations

import json

import pytest
import torch
from plain_nets import PlainCNN, PlainMLP, PlainResNet

import hatcl
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.cli_run import compose_config, run_from_config
from hatcl.masking.stage import Stage


def _pair(kind: str):
    torch.manual_seed(0)
    if kind == "mlp":
        return MLPBackbone(input_shape=(1, 8, 8), hidden_dims=(12, 10)), PlainMLP(), (1, 8, 8)
    if kind == "cnn":
        hand = CNNBackbone(
            input_shape=(1, 8, 8), channels=(4, 6), kernel_sizes=(4, 3), fc_dims=(10, 8)
        )
        return hand, PlainCNN(), (1, 8, 8)
    hand = ResNetBackbone(input_shape=(3, 8, 8), width=4, num_blocks=(1, 1, 1, 1), small_input=True)
    return hand, PlainResNet(), (3, 8, 8)


def _copy_weights(hand, wrapped) -> None:
    """Hand-written weights and embeddings into the wrapped copy, matched by forward order."""
    with torch.no_grad():
        for (_, a), (_, b) in zip(hand.layer_modules(), wrapped.layer_modules(), strict=True):
            b.weight.copy_(a.weight)
            if a.bias is not None:
                b.bias.copy_(a.bias)
        pairs = zip(hand.masker.embeddings.values(), wrapped.masker.embeddings.values())
        for a, b in pairs:
            b.copy_(a)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet"])
def test_same_topology_masks_and_outputs(kind):
    hand, plain, shape = _pair(kind)
    x = torch.randn(5, *shape)
    wrapped = hatcl.wrap(plain, x)
    rename = dict(zip(wrapped.keys, hand.masker.embeddings.keys(), strict=True))
    assert [rename[k] for k in wrapped.unit_counts()] == list(hand.unit_counts())
    assert list(wrapped.unit_counts().values()) == list(hand.unit_counts().values())
    ours = [
        (rename[w.mask_key], rename.get(w.input_mask_key), w.input_repeat)
        for w in wrapped.weighted_layers
    ]
    theirs = [(w.mask_key, w.input_mask_key, w.input_repeat) for w in hand.weighted_layers]
    assert ours == theirs
    assert wrapped.sequential_taps == hand.sequential_taps
    _copy_weights(hand, wrapped)
    for model in (hand, wrapped):
        model.setup_task(1)
        model.eval()
    for stage, scale in ((Stage.TRAIN, 3.0), (Stage.VALIDATION, 400.0)):
        a = hand(x, task_id=1, stage=stage, scale=scale)
        b = wrapped(x, task_id=1, stage=stage, scale=scale)
        torch.testing.assert_close(b.features, a.features, rtol=0, atol=0)
        for key, value in b.activations.items():
            torch.testing.assert_close(value, a.activations[rename[key]], rtol=0, atol=0)
        for key, value in b.masks.items():
            torch.testing.assert_close(value, a.masks[rename[key]], rtol=0, atol=0)
    hand.masker.store_current(task_id=1)
    wrapped.masker.store_current(task_id=1)
    a, b = (m(x, task_id=1, stage=Stage.TEST) for m in (hand, wrapped))
    torch.testing.assert_close(b.features, a.features, rtol=0, atol=0)
    assert wrapped.activation_module(wrapped.keys[-1]) is not None


RUNS = [
    ("mlp", "plain_nets:make_mlp", ["backbone.hidden_dims=[12,10]"], ["algorithm=hat"]),
    (
        "cnn",
        "plain_nets:make_cnn",
        ["backbone.channels=[4,6]", "backbone.kernel_sizes=[4,3]", "backbone.fc_dims=[10,8]"],
        ["algorithm=adahat"],
    ),
    (
        "mlp",
        "plain_nets:make_mlp",
        ["backbone.hidden_dims=[12,10]"],
        ["algorithm=fgadahat", "algorithm.importance_type=output_weight_gradient_abs_sum"],
    ),
    (
        "resnet18",
        "plain_nets:make_resnet",
        ["backbone.width=4", "backbone.num_blocks=[1,1,1,1]"],
        ["algorithm=fgadahat", "algorithm.importance_type=gradient_x_activation_abs"],
    ),
]


def _matrix(tmp_path, name, overrides):
    cfg = compose_config(
        [
            "data=split_digits",
            "data.num_tasks=3",
            "data.train_subset=120",
            "data.test_subset=60",
            "optimizer.lr=0.01",
            "trainer.max_epochs=1",
            "trainer.batch_size=32",
            "trainer.enable_progress_bar=false",
            "trainer.loggers=[]",
            "trainer.figures=false",
            "trainer.checkpoints=false",
            f"output_dir={tmp_path / name}",
            *overrides,
        ]
    )
    run_from_config(cfg, run_dir=tmp_path / name)
    return json.loads((tmp_path / name / "metrics.json").read_text())["accuracy_matrix"]


@pytest.mark.parametrize(("builtin", "target", "options", "algorithm"), RUNS)
def test_same_accuracy_matrix_for_a_fixed_seed(tmp_path, builtin, target, options, algorithm):
    hand = _matrix(tmp_path, "hand", [f"backbone={builtin}", *options, *algorithm])
    custom_options = {
        "mlp": ["+backbone.hidden=[12,10]"],
        "cnn": ["+backbone.channels=[4,6]", "+backbone.kernels=[4,3]", "+backbone.fc=[10,8]"],
        "resnet18": ["+backbone.width=4"],
    }[builtin]
    wrapped = _matrix(
        tmp_path,
        "wrapped",
        ["backbone=custom", f"backbone.target={target}", *custom_options, *algorithm],
    )
    assert wrapped == hand
    assert hand[1][0] == hand[0][0]  # HAT family: task 1 unchanged by task 2
