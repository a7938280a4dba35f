"""``hatcl list``: every registry and its entries (torch-free)."""

from __future__ import annotations

import importlib

from hatcl.registry import Registry

# (module, attribute) of every registry; the modules are torch-free catalogues.
REGISTRIES: tuple[tuple[str, str], ...] = (
    ("hatcl.algorithms.registries", "ALGORITHMS"),
    ("hatcl.algorithms.registries", "HAT_ADJUSTMENT_MODES"),
    ("hatcl.algorithms.registries", "EWC_MODES"),
    ("hatcl.algorithms.registries", "ADAHAT_ADJUSTMENT_MODES"),
    ("hatcl.algorithms.registries", "SUMMING_STRATEGIES"),
    ("hatcl.algorithms.registries", "IMPORTANCE_SCHEDULERS"),
    ("hatcl.importance.registry", "IMPORTANCE_TYPES"),
    ("hatcl.backbones.registries", "BACKBONES"),
    ("hatcl.backbones.registries", "BATCH_NORM_MODES"),
    ("hatcl.heads.registries", "HEADS"),
    ("hatcl.masking.registries", "INIT_MODES"),
    ("hatcl.masking.registries", "AGGREGATIONS"),
    ("hatcl.masking.registries", "SPARSITY_MODES"),
    ("hatcl.data.registries", "SOURCES"),
    ("hatcl.data.registries", "SCENARIOS"),
    ("hatcl.training.registries", "OPTIMIZERS"),
    ("hatcl.training.registries", "LR_SCHEDULERS"),
)


def all_registries() -> list[Registry]:
    """Every registry hatcl knows, in display order."""
    return [getattr(importlib.import_module(module), name) for module, name in REGISTRIES]


def print_registries() -> None:
    """Print each registry's kind, then one line per entry with its summary."""
    for registry in all_registries():
        print(f"{registry.kind}:")
        width = max((len(name) for name in registry.names()), default=0)
        for entry in registry.entries():
            print(f"  {entry.name:<{width}}  {entry.summary}".rstrip())
        print()
