"""``hatcl run``: compose the Hydra configuration and run the experiment.

A single run is composed with Hydra's compose API so that every configuration mistake ends in a
one-paragraph error and exit code 2; ``-m``/``--multirun`` and Hydra's own flags go through
``hydra.main`` (launchers, sweeps).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

EXIT_CONFIG_ERROR = 2
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)
CONFIG_GROUPS = ("algorithm", "backbone", "data", "optimizer", "trainer")


def run_command(args: Sequence[str]) -> int:
    """Run one experiment (or a sweep with ``-m``); return the process exit code."""
    try:
        check_group_choices(args)
    except ValueError as error:
        return _fail(error)
    if any(arg.startswith("-") for arg in args):
        return _hydra_main(args)
    try:
        from hydra.errors import HydraException

        cfg = compose_config(args)
    except HydraException as error:
        return _fail(error)
    try:
        run_from_config(cfg)
    except USER_ERRORS as error:
        return _fail(error)
    return 0


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The root configuration with ``overrides`` applied (Hydra's compose API)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="hatcl.conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def run_from_config(
    cfg: DictConfig, *, run_dir: str | Path | None = None, callbacks: Sequence = ()
):
    """Validate ``cfg`` into an :class:`ExperimentConfig` and run it; returns the RunResult.

    ``callbacks`` are :class:`hatcl.training.run_callbacks.RunCallback` observers of the run.
    """
    from hatcl.training.experiment import ExperimentConfig, build_algorithm

    config = ExperimentConfig.from_mapping(cfg)
    build_algorithm(config.algorithm)  # validates every algorithm option before heavy imports
    from hatcl.training.runner import run_experiment

    resolved = OmegaConf.to_yaml(_without_hydra(cfg), resolve=True)
    resume = cfg.get("resume")
    if resume:
        return run_experiment(
            config, run_dir=resume, resolved_config=resolved, resume=True, callbacks=callbacks
        )
    target = run_dir if run_dir is not None else cfg.output_dir
    return run_experiment(config, run_dir=target, resolved_config=resolved, callbacks=callbacks)


def check_group_choices(args: Sequence[str]) -> None:
    """Reject ``group=option`` overrides naming an option that has no config file."""
    for arg in args:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in CONFIG_GROUPS:
            continue
        choices = group_options(key)
        for option in value.split(","):
            if option not in choices:
                raise ValueError(
                    f"unknown {key} {option!r}; valid choices for {key}= are: {', '.join(choices)}"
                )


def group_options(group: str) -> list[str]:
    """The options of a configuration group (its YAML files)."""
    from importlib.resources import files

    folder = files("hatcl.conf").joinpath(group)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _hydra_main(args: Sequence[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def _task(cfg: DictConfig) -> None:
        try:
            run_from_config(cfg, run_dir=HydraConfig.get().runtime.output_dir)
        except USER_ERRORS as error:
            raise SystemExit(_fail(error)) from None

    saved = sys.argv
    sys.argv = ["hatcl run", *args]
    try:
        _task()
    except SystemExit as stop:  # a job's user error (exit 2) or Hydra's own exit
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        sys.argv = saved
    return 0


def _without_hydra(cfg: DictConfig) -> DictConfig:
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return OmegaConf.create(plain)


def _fail(error: BaseException) -> int:
    message = " ".join(str(error).split())
    print(f"hatcl: configuration error: {message}", file=sys.stderr)
    return EXIT_CONFIG_ERROR
