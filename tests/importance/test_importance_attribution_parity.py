"""Every shared-pass attribution equals Captum's per-layer result, per method and per layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hatcl.backbones.base import ActivationTap, ApplyMask, Backbone, BackboneOutput, WeightedLayer
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution import shared
from hatcl.importance.attribution.bound import BoundLogits, activation_taps, attribution_guard
from hatcl.importance.attribution.per_layer import captum_per_layer
from hatcl.masking.masker import HATMasker
from hatcl.masking.stage import Stage

DETERMINISTIC = [
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


class TinyConvBackbone(Backbone):
    """conv (masked, ReLU, tap) -> max pool -> flatten -> linear (masked, ReLU, tap)."""

    def __init__(self, *, sequential: bool = True) -> None:
        super().__init__()
        self.sequential_taps = sequential
        self.conv = nn.Conv2d(2, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 6)
        self.apply_masks = nn.ModuleList([ApplyMask(), ApplyMask()])
        self.relus = nn.ModuleList([nn.ReLU(), nn.ReLU()])
        self.pool = nn.MaxPool2d(2)
        self.taps = nn.ModuleDict({"conv1": ActivationTap(), "fc1": ActivationTap()})
        self.weighted_layers = (
            WeightedLayer(name="conv", mask_key="conv1", input_mask_key=None),
            WeightedLayer(name="fc", mask_key="fc1", input_mask_key="conv1", input_repeat=9),
        )
        self.output_dim = 6
        self.masker = HATMasker(unit_counts={"conv1": 4, "fc1": 6})

    def forward(self, x, *, task_id, stage, scale=None):
        masks = self.masker.masks(stage=stage, task_id=task_id, scale=scale)
        pre = self.apply_masks[0](self.conv(x), mask=masks["conv1"])
        h1 = self.taps["conv1"](self.relus[0](pre))
        pre = self.fc(self.pool(h1).flatten(1))
        h2 = self.taps["fc1"](self.relus[1](self.apply_masks[1](pre, mask=masks["fc1"])))
        return BackboneOutput(features=h2, masks=masks, activations={"conv1": h1, "fc1": h2})


def _model(backbone: Backbone, features: int) -> ContinualModel:
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=features))
    model.setup_task(task_id=1, num_classes=4)
    model.setup_task(task_id=2, num_classes=5)
    return model


def _mlp_problem(*, sequential: bool = True):
    torch.manual_seed(0)
    model = _model(MLPBackbone(input_shape=(3, 4), hidden_dims=(10, 7, 6)), 6)
    model.backbone.sequential_taps = sequential
    x = torch.randn(7, 3, 4)
    targets = torch.randint(0, 5, (7,))
    return model, x, targets


def _conv_problem(*, sequential: bool = True):
    torch.manual_seed(1)
    model = _model(TinyConvBackbone(sequential=sequential), 6)
    x = torch.randn(5, 2, 6, 6)
    targets = torch.randint(0, 5, (5,))
    return model, x, targets


def _problem(model: ContinualModel) -> shared.AttributionProblem:
    bound = BoundLogits(model, task_id=2, stage=Stage.TRAIN, scale=2.5)
    return shared.AttributionProblem(
        bound=bound,
        taps=activation_taps(model),
        sequential=model.backbone.sequential_taps,
    )


def _assert_layers_close(ours: dict, reference: dict) -> None:
    assert list(ours) == list(reference)
    for key in reference:
        scale = float(reference[key].abs().max())
        assert scale > 0, f"layer {key}: all-zero reference, the comparison would be empty"
        torch.testing.assert_close(
            ours[key], reference[key], rtol=1e-5, atol=1e-6 * scale, msg=f"layer {key}"
        )


def _shared(method: str, problem, x, targets, **options):
    return getattr(shared, method)(problem, x, targets, **options)


def _references(x):
    return x[[3, 0, 2]]


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_mlp_shared_equals_captum_per_layer(method):
    model, x, targets = _mlp_problem()
    problem = _problem(model)
    options = {"references": _references(x)} if method == "deepliftshap" else {}
    with attribution_guard(model):
        ours = _shared(method, problem, x, targets, **options)
        reference = captum_per_layer(method, problem, x, targets, references=_references(x))
    _assert_layers_close(ours, reference)


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_conv_shared_equals_captum_per_layer(method):
    model, x, targets = _conv_problem()
    problem = _problem(model)
    options = {"references": _references(x)} if method == "deepliftshap" else {}
    shapes = {"conv1": (4, 6, 6), "fc1": (6,)}
    with attribution_guard(model):
        ours = _shared(method, problem, x, targets, **options)
        reference = captum_per_layer(
            method, problem, x, targets, references=_references(x), unit_shapes=shapes
        )
    _assert_layers_close(ours, reference)


@pytest.mark.parametrize("method", ["integrated_gradients", "feature_ablation"])
@pytest.mark.parametrize("build", [_mlp_problem, _conv_problem])
def test_full_forward_path_equals_sequential_path(method, build):
    model, x, targets = build(sequential=True)
    with attribution_guard(model):
        sequential = _shared(method, _problem(model), x, targets)
        model.backbone.sequential_taps = False
        full = _shared(method, _problem(model), x, targets)
    _assert_layers_close(sequential, full)


def _recording_uniform(monkeypatch):
    draws = []
    original = np.random.uniform

    def uniform(*args, **kwargs):
        values = original(*args, **kwargs)
        draws.append(values)
        return values

    monkeypatch.setattr(np.random, "uniform", uniform)
    return draws


@pytest.mark.parametrize("build", [_mlp_problem, _conv_problem])
def test_gradientshap_equals_captum_under_the_same_draws(monkeypatch, build):
    model, x, targets = build()
    problem = _problem(model)
    draws = _recording_uniform(monkeypatch)
    with attribution_guard(model):
        reference = captum_per_layer("gradientshap", problem, x, targets)
        assert len(draws) == len(problem.taps)
        for key, values in zip(problem.taps, draws):
            alphas = torch.tensor(values, dtype=x.dtype).view(x.shape[0], -1)
            assert alphas.shape[1] == shared.GRADIENT_SHAP_SAMPLES
            ours = shared.gradientshap(problem, x, targets, alphas=alphas)
            _assert_layers_close({key: ours[key]}, {key: reference[key]})


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_chunked_equals_one_pass(method):
    model, x, targets = _mlp_problem()
    problem = _problem(model)
    options = {"references": _references(x)} if method == "deepliftshap" else {}
    with attribution_guard(model):
        whole = _shared(method, problem, x, targets, **options)
        parts = list(
            shared.chunked(
                getattr(shared, method),
                problem,
                x,
                targets,
                rows_per_sample=3,
                internal_batch_size=7,
                **options,
            )
        )
    assert [rows for rows, _ in parts] == [2, 2, 2, 1]
    joined = {key: torch.cat([part[key] for _, part in parts]) for key in whole}
    _assert_layers_close(joined, whole)


def test_feature_ablation_groups_units_under_the_bound():
    model, x, targets = _mlp_problem()
    problem = _problem(model)
    with attribution_guard(model):
        whole = shared.feature_ablation(problem, x, targets)
        grouped = shared.feature_ablation(problem, x, targets, max_rows=15)
    _assert_layers_close(grouped, whole)
