"""Registry behaviour and a contract test over every registry hatcl lists."""

import pytest

from hatcl.cli_list import all_registries
from hatcl.registry import Registry


def test_lazy_entry_resolves_and_errors_list_valid_names():
    registry = Registry("colour")
    registry.add("red", "math:pi", summary="a constant")
    assert registry.names() == ("red",)
    assert registry.get("red") == pytest.approx(3.14159265)
    with pytest.raises(ValueError, match="unknown colour 'blue'; valid choices are: red"):
        registry.get("blue")
    with pytest.raises(ValueError, match="unknown shade 'blue'"):
        registry.validate("blue", parameter="shade")


def test_duplicate_names_are_refused():
    registry = Registry("thing")
    registry.add("a", "math:pi")
    with pytest.raises(ValueError, match="already registered"):
        registry.add("a", "math:e")


def test_register_decorator_keeps_object_and_docstring_summary():
    registry = Registry("fn")

    @registry.register("double")
    def double(x):
        """Twice x."""
        return 2 * x

    assert registry.get("double")(3) == 6
    assert registry.entries()[0].summary == "Twice x."


@pytest.mark.parametrize(
    "registry", all_registries(), ids=lambda registry: registry.kind.replace(" ", "_")
)
def test_every_entry_of_every_registry_resolves(registry):
    assert len(registry) > 0
    for name in registry.names():
        assert registry.get(name) is not None, f"{registry.kind} {name} resolves to None"
        assert registry.validate(name) == name
