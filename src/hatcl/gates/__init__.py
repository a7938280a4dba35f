"""hatcl.gates: stochastic L0 gates (Gaussian, binary concrete) and feature selection.

Names are resolved lazily, so ``import hatcl.gates`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GaussianStochasticGates": "hatcl.gates.gaussian",
    "BinaryConcreteStochasticGates": "hatcl.gates.binary_concrete",
    "StochasticGatesBase": "hatcl.gates.base",
    "GatesInputError": "hatcl.gates.base",
    "REG_REDUCTIONS": "hatcl.gates.base",
    "GATES": "hatcl.gates.kinds",
    "FeatureSelection": "hatcl.gates.selection",
    "GatedClassifier": "hatcl.gates.selection",
    "select_features": "hatcl.gates.selection",
    "make_two_moons": "hatcl.gates.selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
