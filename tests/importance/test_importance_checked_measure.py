"""A user's own importance measure is checked on its first call: type, keys, shapes, finiteness."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hatcl
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.importance.base import ImportanceMeasure
from hatcl.importance.checked import (
    MeasureOutputError,
    check_finite_output,
    check_measure_output,
)
from hatcl.importance.registry import IMPORTANCE_TYPES

MASKS = {"fc1": torch.ones(3), "fc2": torch.ones(2)}


@pytest.mark.parametrize(
    ("output", "phrase"),
    [
        (1.5, "returned float"),
        ({"fc1": torch.ones(3)}, r"missing: \['fc2'\]"),
        ({"fc1": torch.ones(3), "fc2": torch.ones(2), "fc9": torch.ones(1)}, r"unknown: \['fc9'\]"),
        ({"fc1": torch.ones(4, 3), "fc2": torch.ones(2)}, r"shape \(4, 3\) for 'fc1'.*\(3,\)"),
        ({"fc1": [1.0, 2.0, 3.0], "fc2": torch.ones(2)}, "returned list for 'fc1'"),
    ],
)
def test_each_wrong_output_is_named(output, phrase):
    with pytest.raises(MeasureOutputError, match=phrase) as caught:
        check_measure_output(output, masks=MASKS, name="mypkg:bad")
    assert "'mypkg:bad'" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_named(bad):
    output = {"fc1": torch.ones(3), "fc2": torch.tensor([1.0, bad])}
    check_measure_output(output, masks=MASKS, name="m")  # the form is right
    with pytest.raises(MeasureOutputError, match="'m' returned non-finite values .* for 'fc2'"):
        check_finite_output(output, name="m")


def test_a_right_output_passes():
    check_measure_output({"fc1": torch.ones(3), "fc2": torch.zeros(2)}, masks=MASKS, name="m")


def _one_step(measure_name: str, *, end_task: bool = False) -> None:
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(6,), hidden_dims=(5, 4))
    learner = hatcl.Learner(backbone=backbone, algorithm=FGAdaHAT(importance_type=measure_name))
    learner.start_task(1, num_classes=3, num_batches=1)
    optimizer = torch.optim.SGD(learner.trainable_parameters(), lr=0.1)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    loss = F.cross_entropy(learner(x, y), y) + learner.penalty()
    loss.backward()
    learner.before_optimizer_step()
    optimizer.step()
    learner.after_optimizer_step()
    if end_task:
        learner.end_task()


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch):
    """Measures registered here leave the registry with their test (other tests list it)."""
    monkeypatch.setattr(IMPORTANCE_TYPES, "_entries", dict(IMPORTANCE_TYPES._entries))


def _register(name: str, compute) -> None:
    if name not in IMPORTANCE_TYPES:
        IMPORTANCE_TYPES.register(name)(ImportanceMeasure(compute=compute))


def test_a_measure_leaving_out_a_layer_fails_at_its_first_step_naming_it():
    def first_layer_only(context):
        return {"fc1": torch.ones(5)}

    _register("test_first_layer_only", first_layer_only)
    with pytest.raises(MeasureOutputError, match="'test_first_layer_only'.*missing"):
        _one_step("test_first_layer_only")


def test_a_measure_returning_a_float_fails_at_its_first_step():
    _register("test_returns_float", lambda context: 0.5)
    with pytest.raises(MeasureOutputError, match="'test_returns_float' returned float"):
        _one_step("test_returns_float")


def test_a_measure_returning_nan_fails_at_the_end_of_the_task_naming_it():
    _register("test_returns_nan", lambda ctx: {k: torch.full_like(m, float("nan"))
                                               for k, m in ctx.output.backbone.masks.items()})
    _one_step("test_returns_nan")  # the step itself does not wait for the device
    with pytest.raises(MeasureOutputError, match="'test_returns_nan' returned non-finite"):
        _one_step("test_returns_nan", end_task=True)


def test_a_built_in_measure_passes_the_check():
    _one_step("input_weight_abs_sum", end_task=True)
