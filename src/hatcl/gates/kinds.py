"""The registry of gate kinds, importable without torch (targets are resolved lazily)."""

from __future__ import annotations

from hatcl.registry import Registry

GATES = Registry("gate")
"""Gate kinds by name; ``GATES.get(name)`` returns the gate class."""

GATES.add(
    "gaussian",
    "hatcl.gates.gaussian:GaussianStochasticGates",
    summary="Gaussian gates clamp(mu + N(0, std^2), 0, 1) (Yamada et al. 2020)",
)
GATES.add(
    "binary_concrete",
    "hatcl.gates.binary_concrete:BinaryConcreteStochasticGates",
    summary="stretched binary-concrete (hard-concrete) gates (Louizos et al. 2018)",
)
