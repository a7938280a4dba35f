"""Shared-pass attributions equal Captum per layer on hatcl's CNN and ResNet backbones."""

from __future__ import annotations

import pytest
import torch

from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution import shared
from hatcl.importance.attribution.bound import BoundLogits, activation_taps, attribution_guard
from hatcl.importance.attribution.per_layer import captum_per_layer
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage

METHODS = [
    "gradient_x_activation",
    "gradcam",
    "deeplift",
    "deepliftshap",
    "conductance",
    "internal_influence",
    "integrated_gradients",
    "feature_ablation",
    "lrp",
]


def _cnn():
    return CNNBackbone(
        input_shape=(1, 6, 6),
        channels=(3, 4),
        kernel_sizes=(3, 2),
        fc_dims=(5,),
        batch_norm="shared",
    )


def _resnet():
    return ResNetBackbone(
        input_shape=(2, 6, 6), width=2, num_blocks=(1, 1), small_input=True, batch_norm="none"
    )


def _setup(build, seed=0):
    torch.manual_seed(seed)
    backbone = build()
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    model.setup_task(task_id=1, num_classes=3)
    model.setup_task(task_id=2, num_classes=4)
    shape = (4, 1, 6, 6) if isinstance(backbone, CNNBackbone) else (4, 2, 6, 6)
    x = torch.randn(shape)
    targets = torch.tensor([0, 3, 1, 2])
    return model, x, targets


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("build", [_cnn, _resnet])
def test_backbone_shared_equals_captum_per_layer(method, build):
    model, x, targets = _setup(build)
    problem = shared.AttributionProblem(
        bound=BoundLogits(model, task_id=2, stage=Stage.TRAIN, scale=3.0),
        taps=activation_taps(model),
        sequential=model.backbone.sequential_taps,
    )
    references = x[[2, 0, 1]]
    options = {"references": references} if method == "deepliftshap" else {}
    with attribution_guard(model), torch.no_grad():
        shapes = {
            key: tuple(value.shape[1:])
            for key, value in model(
                x, task_id=2, stage=Stage.TRAIN, scale=3.0
            ).backbone.activations.items()
        }
    with attribution_guard(model):
        ours = getattr(shared, method)(problem, x, targets, **options)
        reference = captum_per_layer(
            method, problem, x, targets, references=references, unit_shapes=shapes
        )
    assert list(ours) == list(model.backbone.masker.unit_counts)
    for key in reference:
        scale = float(reference[key].abs().max())
        torch.testing.assert_close(
            ours[key], reference[key], rtol=1e-5, atol=1e-6 * max(scale, 1e-6), msg=key
        )


@pytest.mark.parametrize("build", [_cnn, _resnet])
def test_every_attribution_type_runs_on_the_backbone(build):
    model, x, targets = _setup(build, seed=1)
    model.train()
    output = model(x, task_id=2, stage=Stage.TRAIN, scale=3.0)
    context = ImportanceContext(
        model=model, task_id=2, inputs=x, targets=targets, scale=3.0, output=output
    )
    units = model.backbone.masker.unit_counts
    for name in IMPORTANCE_TYPES.names():
        if not name.endswith("_abs") or name == "activation_abs" or "weight" in name:
            continue
        importance = IMPORTANCE_TYPES.get(name).compute(context)
        assert {key: value.shape[0] for key, value in importance.items()} == units, name
        assert all(torch.isfinite(value).all() for value in importance.values()), name
