"""One source of defaults: every algorithm's Python constructor equals its CLI preset."""

from __future__ import annotations

import inspect
from importlib.resources import files

import pytest
import yaml

from hatcl.algorithms.registries import ALGORITHMS


def _preset(name: str) -> dict:
    text = files("hatcl.conf").joinpath("algorithm", f"{name}.yaml").read_text(encoding="utf-8")
    preset = yaml.safe_load(text)
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
