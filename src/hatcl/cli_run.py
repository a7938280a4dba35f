"""``hatcl run``: compose the Hydra configuration and run the experiment.

A single run is composed with Hydra's compose API so that every configuration mistake ends in a
one-paragraph error and exit code 2; ``-m``/``--multirun`` and Hydra's own flags go through
``hydra.main`` (launchers, sweeps).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

EXIT_CONFIG_ERROR = 2
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)
CONFIG_GROUPS = ("algorithm", "backbone", "data", "optimizer", "trainer")
HELP_FLAGS = ("--help", "-h")
RUN_HELP = """\
usage: hatcl run [group=preset ...] [key=value ...] [-m] [--config-dir DIR]

Run a continual-learning experiment composed from presets and overrides, e.g.
  hatcl run algorithm=hat data=split_digits trainer.max_epochs=3 seed=2 output_dir=runs/x

configuration groups (group=preset; every key of a group: group.key=value):
{groups}
top-level keys: seed, head (til | dil), output_dir (default runs/<time>), resume (a run folder
  to continue), reference_run (an `independent` run folder, or auto: FWT)
options:
  -m, --multirun       sweep comma-separated values (a=1,2 b=x,y: every combination)
  --config-dir DIR     add DIR's presets (DIR/<group>/<name>.yaml) to every group
  --cfg job            print the composed configuration and exit (Hydra)
  --hydra-help         Hydra's own flags
Every registered option (algorithms, importance types, schedulers, ...): hatcl list [GROUP].
Results: output_dir/metrics.json, accuracy_matrix.csv, config.yaml, tasks.json,
training_curves.csv, timing.json, run.log, checkpoints/, logs/, figures/.
"""


def run_command(args: Sequence[str], *, callbacks: Sequence = ()) -> int:
    """Run one experiment (or a sweep with ``-m``); return the process exit code.

    ``callbacks`` (:class:`hatcl.training.run_callbacks.RunCallback`) observe a single run.
    A run stopped by SIGINT/SIGTERM prints where it stopped and how to resume it, and returns
    ``128 + signal`` (130, 143).
    """
    if any(arg in HELP_FLAGS for arg in args):
        print(run_help(), end="")
        return 0
    try:
        check_group_choices(args)
    except ValueError as error:
        return _fail(error)
    if any(arg.startswith("-") for arg in args):
        return _hydra_main(args)
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose_config(args)
    except (HydraException, OmegaConfBaseException) as error:
        return _fail(rephrase_override_error(error, args))
    from hatcl.training.interrupt import RunInterrupted

    try:
        run_from_config(cfg, callbacks=callbacks)
    except USER_ERRORS as error:
        return _fail(error)
    except RunInterrupted as stop:
        return report_interruption(stop, args)
    return 0


def run_help() -> str:
    """``hatcl run --help``: the groups with their presets, the top-level keys, the flags."""
    groups = [*CONFIG_GROUPS, "benchmark", "experiment"]
    width = max(len(group) for group in groups)
    import textwrap

    lines = [
        textwrap.fill(
            ", ".join(group_options(group)),
            width=96,
            initial_indent=f"  {group:<{width}}  ",
            subsequent_indent=" " * (width + 4),
        )
        for group in groups
    ]
    return RUN_HELP.format(groups="\n".join(lines))


def report_interruption(stop, args: Sequence[str]) -> int:
    """Print one line: where the run stopped and the command that resumes it; the exit code."""
    kept = [a for a in args if a.partition("=")[0].lstrip("+~") not in ("output_dir", "resume")]
    if stop.checkpoint is None:
        advice = "no checkpoint was written (trainer.checkpoints=false): it cannot be resumed"
    else:
        advice = f"resume with: hatcl run {' '.join([*kept, f'resume={stop.run_dir}'])}"
    print(f"{stop}; {advice}", file=sys.stderr, flush=True)
    return stop.exit_code


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The root configuration with ``overrides`` applied (Hydra's compose API)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="hatcl.conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def run_from_config(
    cfg: DictConfig, *, run_dir: str | Path | None = None, callbacks: Sequence = ()
):
    """Check the whole of ``cfg`` (creating nothing), then run it; returns the RunResult.

    ``callbacks`` are :class:`hatcl.training.run_callbacks.RunCallback` observers of the run.

    Raises:
        ValueError, TypeError, FileNotFoundError: a refused configuration (nothing was written),
            or a failure of the run before its first checkpoint (what it wrote is removed, as
            after a Ctrl-C then).
    """
    plan = plan_run(cfg, run_dir=run_dir)
    from hatcl.preflight import print_warnings, set_aside_damaged
    from hatcl.training.runner import run_experiment

    print_warnings(plan)
    set_aside_damaged(plan)
    fresh = not plan.resume and not plan.run_dir.exists()
    try:
        return run_experiment(
            plan.config,
            run_dir=plan.run_dir,
            resolved_config=plan.resolved,
            resume=plan.resume,
            callbacks=callbacks,
        )
    except (*USER_ERRORS, KeyboardInterrupt) as error:  # refused late, or Ctrl-C before tasks
        error.hatcl_during_run = True  # tells data errors from configuration ones (error_kind)
        if not plan.resume and plan.config.trainer.checkpoints:
            _remove_unstarted(plan.run_dir, fresh=fresh)
        raise


def plan_run(cfg: DictConfig, *, run_dir: str | Path | None = None):
    """Resolve ``cfg`` once and check all of it (:func:`hatcl.preflight.preflight`)."""
    from omegaconf.errors import OmegaConfBaseException

    from hatcl.preflight import preflight

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ValueError(f"the configuration cannot be resolved: {error}") from None
    plain.pop("hydra", None)
    resolved = OmegaConf.to_yaml(OmegaConf.create(plain))
    target = None if run_dir is None else str(run_dir)
    return preflight(plain, resolved=resolved, run_dir=target)


def _remove_unstarted(folder: Path, *, fresh: bool) -> None:
    """Remove what a run that failed before finishing a task wrote (its folder was ours)."""
    import shutil

    if not folder.is_dir() or any((folder / "checkpoints").glob("*.ckpt")):
        return
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


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


def _hydra_main(args: Sequence[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hatcl.training.interrupt import RunInterrupted

    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def _task(cfg: DictConfig) -> None:
        hydra_config = HydraConfig.get()
        if hydra_config.mode == RunMode.MULTIRUN:
            print(sweep_header(hydra_config), flush=True)
        try:
            run_from_config(cfg, run_dir=hydra_config.runtime.output_dir)
        except USER_ERRORS as error:
            raise SystemExit(_fail(error)) from None
        except RunInterrupted as stop:
            overrides = HydraConfig.get().overrides.task
            raise SystemExit(report_interruption(stop, list(overrides))) from None

    saved = sys.argv
    sys.argv = ["hatcl run", *args]
    try:
        _task()
    except SystemExit as stop:  # a job's user error (exit 2) or Hydra's own exit
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        sys.argv = saved
    return 0


def sweep_header(hydra_config) -> str:
    """The line printed before each job of a sweep: its number, overrides and folder."""
    from omegaconf import MISSING

    job = hydra_config.job
    number = job.get("num", MISSING) if hasattr(job, "get") else getattr(job, "num", None)
    overrides = " ".join(hydra_config.overrides.task) or "(no overrides)"
    label = "" if number in (None, MISSING) else f" {number}"
    return f"== job{label}: {overrides} -> {hydra_config.runtime.output_dir}"


def _fail(error: BaseException) -> int:
    message = " ".join(str(error).split())
    print(f"hatcl: {error_kind(error)}: {message}", file=sys.stderr)
    return EXIT_CONFIG_ERROR


def error_kind(error: BaseException) -> str:
    """``data error`` for a :class:`~hatcl.data.errors.DataError` of a run, else ``configuration
    error``.

    A data file that is missing, truncated or damaged is found when the run loads it, after the
    configuration was checked; the data package raises it as a typed ``DataError``.
    """
    from hatcl.data.errors import DataError

    if getattr(error, "hatcl_during_run", False) and isinstance(error, DataError):
        return "data error"
    return "configuration error"
