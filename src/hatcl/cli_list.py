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
    ("hatcl.inference.registries", "TASK_SCORES"),
    ("hatcl.inference.registries", "CALIBRATIONS"),
    ("hatcl.masking.registries", "INIT_MODES"),
    ("hatcl.masking.registries", "AGGREGATIONS"),
    ("hatcl.masking.registries", "SPARSITY_MODES"),
    ("hatcl.data.registries", "SOURCES"),
    ("hatcl.data.registries", "SCENARIOS"),
    ("hatcl.training.registries", "OPTIMIZERS"),
    ("hatcl.training.registries", "LR_SCHEDULERS"),
    ("hatcl.training.registries", "LOGGERS"),
)


def all_registries() -> list[Registry]:
    """Every registry hatcl knows, in display order."""
    return [getattr(importlib.import_module(module), name) for module, name in REGISTRIES]


#: Configuration groups whose presets (``conf/<group>/*.yaml``) ``hatcl list <group>`` shows.
PRESET_GROUPS = ("algorithm", "backbone", "data", "optimizer", "trainer", "benchmark", "experiment")


def registry_names(module: str, attribute: str, kind: str) -> set[str]:
    """The names ``hatcl list`` accepts for a registry: its kind and its attribute, any case."""
    return {kind.replace(" ", "_").lower(), _singular(attribute.lower())}


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def print_registries(groups: list[str] | None = None) -> None:
    """Print each registry's kind, then one line per entry with its summary.

    ``groups`` (e.g. ``["algorithm", "importance_type"]``) limits the output to those registries
    and configuration groups; ``["groups"]`` prints the names accepted.

    Raises:
        ValueError: a name that is neither a registry nor a configuration group.
    """
    wanted = [_normal(group) for group in groups or []]
    known = _known_names()
    if wanted == ["group"]:
        print("\n".join(sorted(known)))
        return
    unknown = [group for group, normal in zip(groups or [], wanted) if normal not in known]
    if unknown:
        raise ValueError(
            f"unknown group {unknown[0]!r}; valid: {', '.join(sorted(known))} (or none: all)"
        )
    for (module, attribute), registry in zip(REGISTRIES, all_registries()):
        if not wanted or registry_names(module, attribute, registry.kind) & set(wanted):
            _print_registry(registry)
    for group in PRESET_GROUPS:
        if group in wanted:
            print(f"{group}= presets (conf/{group}/*.yaml): {', '.join(preset_names(group))}\n")


def preset_names(group: str) -> list[str]:
    """The presets of configuration group ``group`` (its YAML files)."""
    from hatcl.cli_run import group_options

    return group_options(group)


def _print_registry(registry: Registry) -> None:
    print(f"{registry.kind}:")
    width = max((len(name) for name in registry.names()), default=0)
    for entry in registry.entries():
        print(f"  {entry.name:<{width}}  {entry.summary}".rstrip())
    print()


def _known_names() -> set[str]:
    names = set(PRESET_GROUPS) | {"group"}
    for (module, attribute), registry in zip(REGISTRIES, all_registries()):
        names |= registry_names(module, attribute, registry.kind)
    return names


def _normal(name: str) -> str:
    name = name.strip().lower().replace("-", "_").replace(" ", "_")
    return _singular(name) if _singular(name) in _known_names() else name
