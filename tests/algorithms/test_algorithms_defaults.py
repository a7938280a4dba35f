"""One source of defaults: every algorithm's Python constructor equals its CLI preset."""

from __future__ import annotations

import inspect
from importlib.resources import files

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from hatcl.algorithms.adahat import AdaHAT
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.algorithms.hat import HAT
from hatcl.algorithms.hat_options import HATOptions, option_defaults
from hatcl.algorithms.registries import ALGORITHMS


def _preset(name: str) -> dict:
    """The ``algorithm`` section Hydra composes for ``algorithm=<name>`` (defaults included)."""
    with initialize_config_module(config_module="hatcl.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[f"algorithm={name}"])
    preset = OmegaConf.to_container(cfg.algorithm, resolve=True)
    assert preset.pop("name") == name
    return preset


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_constructor_defaults_equal_the_preset(name):
    signature = inspect.signature(ALGORITHMS.get(name).__init__)
    defaults = {
        key: parameter.default
        for key, parameter in signature.parameters.items()
        if key != "self" and parameter.kind is parameter.KEYWORD_ONLY
    }
    required = sorted(k for k, v in defaults.items() if v is inspect.Parameter.empty)
    assert required == [], f"{name}: parameters without a default: {required}"
    preset = _preset(name)
    assert set(preset) == set(defaults), name  # the preset names every option, nothing else
    different = {k: (defaults[k], v) for k, v in preset.items() if defaults[k] != v}
    assert different == {}, f"{name}: constructor default != preset: {different}"


def test_the_shared_hat_family_options_are_written_once():
    """hat, adahat and fgadahat inherit the shared file; none repeats one of its keys."""
    folder = files("hatcl.conf").joinpath("algorithm")
    shared = yaml.safe_load(folder.joinpath("shared", "hat_family.yaml").read_text("utf-8"))
    assert shared == option_defaults(HATOptions)
    for name in ("hat", "adahat", "fgadahat"):
        own = yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
        assert own["defaults"][0] == "shared/hat_family@_here_", name
        assert set(own) & set(shared) == set(), name


@pytest.mark.parametrize("cls", [HAT, AdaHAT, FGAdaHAT])
def test_the_hat_family_constructors_stay_small(cls):
    """Own options as parameters (at most 12 with self and **options); shared ones once."""
    source = inspect.signature(cls.__init__, follow_wrapped=False)
    code = cls.__init__.__code__
    assert code.co_argcount + code.co_kwonlyargcount + 1 <= 12, cls.__name__
    assert set(option_defaults(HATOptions)) <= set(source.parameters)
    assert not any(p.kind is p.VAR_KEYWORD for p in source.parameters.values())


@pytest.mark.parametrize("cls", [HAT, AdaHAT, FGAdaHAT])
def test_a_shared_option_reaches_the_mechanism(cls):
    algorithm = cls(s_max=123.0, mask_sparsity_reg_mode="cross", embedding_clamp=6.0)
    assert (algorithm.s_max, algorithm.mask_sparsity_reg_mode) == (123.0, "cross")
    assert algorithm.embedding_clamp == 6.0


@pytest.mark.parametrize("cls", [HAT, AdaHAT, FGAdaHAT])
def test_an_unknown_option_is_refused_naming_the_valid_ones(cls):
    with pytest.raises(TypeError, match="unexpected option.*s_max"):
        cls(s_maximum=3.0)


def test_plugin_options_are_the_plugins_own_and_always_checked():
    algorithm = FGAdaHAT(importance_type="stochastic_gates", stochastic_gates_std=0.25)
    assert algorithm.tracker.plugin.std == 0.25
    with pytest.raises(ValueError, match="stochastic_gates_std"):
        FGAdaHAT(importance_type="input_weight_abs_sum", stochastic_gates_std=-1.0)
