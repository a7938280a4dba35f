"""Overrides of ``hatcl run``: the presets of each group and the messages for wrong keys."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_GROUPS = ("algorithm", "backbone", "data", "optimizer", "trainer")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The root configuration with ``overrides`` applied (Hydra's compose API)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="hatcl.conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def rephrase_override_error(error: Exception, args: Sequence[str]) -> Exception:
    """Hydra's "Could not override 'a.b'" as: the unknown key, the closest valid one, all valid."""
    match = re.search(r"Could not override '([^']+)'", str(error))
    if match is None:
        return error
    key = match.group(1)
    group, _, leaf = key.rpartition(".")
    value = next((a.partition("=")[2] for a in args if a.partition("=")[0] == key), "")
    valid = _valid_keys(group, [a for a in args if a.partition("=")[0] != key])
    if valid is None:
        return error
    if not valid and group not in CONFIG_GROUPS:  # a free mapping such as optimizer.options
        return ValueError(
            f"{group} holds no key {leaf!r} yet: add one with +{key}={value} (the leading + "
            "adds a key that the configuration file does not list)"
        )
    if leaf in valid:
        return ValueError(
            f"{key} is a valid option but not in the configuration file of {group}: set it with "
            f"+{key}={value}"
        )
    from hatcl.validation import unknown_keys_message

    return ValueError(
        f"{unknown_keys_message([leaf], valid=valid, section=group)} (override {key}={value})"
    )


def _valid_keys(group: str, args: Sequence[str]) -> list[str] | None:
    from hatcl.preflight import group_keys

    try:
        cfg = compose_config(args)
        node = OmegaConf.select(cfg, group) if group else cfg
        node = OmegaConf.to_container(node, resolve=False) if node is not None else None
    except Exception:  # the rest of the overrides fail too: their own error comes next
        return None
    if not isinstance(node, dict):
        return None
    if group in OPTION_MAPPINGS:
        return sorted(set(node) | set(_keywords(cfg, group)))
    known = group_keys(group, node) if group in ("", *CONFIG_GROUPS) else None
    return sorted(set(known or []) | set(node)) if group else sorted(known or node)


#: Option mappings passed as keywords to a torch class, and the key naming that class.
OPTION_MAPPINGS = {
    "optimizer.options": ("optimizer.name", "OPTIMIZERS"),
    "optimizer.scheduler_options": ("optimizer.scheduler", "LR_SCHEDULERS"),
}


def _keywords(cfg: DictConfig, group: str) -> list[str]:
    """The keyword options of the optimizer or scheduler ``cfg`` names (hatcl's own aside)."""
    import inspect

    from hatcl.training import registries

    key, registry_name = OPTION_MAPPINGS[group]
    name = OmegaConf.select(cfg, key)
    registry = getattr(registries, registry_name)
    if name not in registry:
        return []
    parameters = inspect.signature(registry.get(name)).parameters
    return [p for p in parameters if p not in ("self", "params", "optimizer", "lr", "weight_decay")]


def check_group_choices(args: Sequence[str]) -> None:
    """Reject ``group=option`` overrides naming an option that has no config file.

    The presets of a ``--config-dir DIR`` (``DIR/<group>/<option>.yaml``) count as options.
    """
    extra = config_dirs(args)
    for arg in args:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in CONFIG_GROUPS:
            continue
        choices = group_options(key, extra_dirs=extra)
        for option in value.split(","):
            if option not in choices:
                from hatcl.validation import closest_hint

                raise ValueError(
                    f"unknown {key} {option!r}{closest_hint(option, choices)}; valid choices for "
                    f"{key}= are: {', '.join(choices)}"
                    + ("" if extra else " (or a preset of your own with --config-dir DIR)")
                )


def config_dirs(args: Sequence[str]) -> list[Path]:
    """The folders given with ``--config-dir DIR`` / ``-cd DIR`` / ``--config-dir=DIR``."""
    found = []
    for index, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag in ("--config-dir", "-cd"):
            if sep:
                found.append(Path(value))
            elif index + 1 < len(args):
                found.append(Path(args[index + 1]))
    return found


def group_options(group: str, *, extra_dirs: Sequence[Path] = ()) -> list[str]:
    """The options of a configuration group: its YAML files, and those of ``extra_dirs``."""
    from importlib.resources import files

    folders = [files("hatcl.conf").joinpath(group), *(Path(d) / group for d in extra_dirs)]
    names = {
        p.name[: -len(".yaml")]
        for folder in folders
        if folder.is_dir()
        for p in folder.iterdir()
        if p.name.endswith(".yaml")
    }
    return sorted(names)
