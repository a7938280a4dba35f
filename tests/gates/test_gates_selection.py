"""Feature selection on two moons (fast form) and the helper's argument checks."""

import dataclasses

import pytest
import torch

from hatcl.gates import GATES, FeatureSelection, GatedClassifier, make_two_moons, select_features


@pytest.fixture(scope="module")
def moons():
    return make_two_moons(n_samples=500, n_nuisance=18, noise=0.1, seed=0)


@pytest.mark.parametrize("gate", GATES.names())
def test_two_moons_exact_recovery(moons, gate):
    features, labels = moons
    result = select_features(
        features=features, labels=labels, gate=gate, epochs=200, lr=0.02, reg_weight=0.5, seed=0
    )
    assert result.gate == gate
    assert result.selected == (0, 1)
    assert min(result.gate_values[:2]) > 0.9
    assert result.gate_values[2:] == (0.0,) * 18
    assert max(result.active_probs[2:]) < 0.2 < 0.9 < min(result.active_probs[:2])
    assert result.accuracy > 0.95


def test_make_two_moons_shapes_and_standardisation(moons):
    features, labels = moons
    assert features.shape == (500, 20) and features.dtype == torch.float32
    assert set(labels.tolist()) == {0, 1}
    torch.testing.assert_close(features.mean(0), torch.zeros(20), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.std(0, unbiased=False), torch.ones(20), atol=1e-4, rtol=0)


def test_result_is_frozen_and_global_rng_untouched(moons):
    features, labels = moons
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    result = select_features(features=features[:50], labels=labels[:50], epochs=2)
    torch.testing.assert_close(torch.rand(1), expected, rtol=0, atol=0)
    assert isinstance(result, FeatureSelection)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.accuracy = 1.0


def test_same_seed_same_result(moons):
    features, labels = moons
    first = select_features(features=features[:60], labels=labels[:60], epochs=3, seed=5)
    second = select_features(features=features[:60], labels=labels[:60], epochs=3, seed=5)
    assert first == second


def test_gated_classifier_uses_registry_kind():
    model = GatedClassifier(
        n_features=4,
        n_classes=3,
        hidden=(5,),
        gate="binary_concrete",
        gate_kwargs={"reg_weight": 0.1},
    )
    assert isinstance(model.gates, GATES.get("binary_concrete"))
    logits, reg = model(torch.randn(2, 4))
    assert logits.shape == (2, 3) and reg.shape == ()


def _call(**overrides):
    features, labels = torch.randn(10, 3), torch.randint(0, 2, (10,))
    return select_features(**{"features": features, "labels": labels, "epochs": 1, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gate": "uniform"}, "gate 'uniform'; valid choices are: gaussian, binary_concrete"),
        ({"epochs": 0}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"threshold": 1.0}, "threshold"),
        ({"features": torch.randn(10)}, "features must be a 2-D float tensor"),
        ({"labels": torch.zeros(9, dtype=torch.long)}, "labels must be a 1-D integer tensor"),
        ({"eval_features": torch.randn(4, 3)}, "eval_features and eval_labels"),
        ({"gate_kwargs": {"std": -1.0}}, "std"),
    ],
)
def test_invalid_select_features_argument(overrides, message):
    with pytest.raises(ValueError, match=message):
        _call(**overrides)


def test_select_features_is_keyword_only():
    with pytest.raises(TypeError):
        select_features(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
