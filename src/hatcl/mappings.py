"""Plain helpers over nested mappings, shared by the configuration and the run-folder readers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_mapping(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": value}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_mapping(value, f"{name}."))
        else:
            flat[name] = value
    return flat
