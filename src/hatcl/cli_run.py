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

from hatcl.cli_overrides import (
    CONFIG_GROUPS,
    check_group_choices,
    compose_config,
    group_options,
    rephrase_override_error,
)
from hatcl.cli_report import (
    USER_ERRORS,
    fail,
    report_divergence,
    report_interruption,
    report_write_failure,
)

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
    A run stopped by SIGINT/SIGTERM (at any moment after the command starts) prints where it
    stopped and how to resume it, and returns ``128 + signal`` (130, 143); a file of the run
    that cannot be written ends it with one paragraph and exit code 1.
    """
    if any(arg in HELP_FLAGS for arg in args):
        print(run_help(), end="")
        return 0
    try:
        check_group_choices(args)
    except ValueError as error:
        return fail(error)
    if any(arg.startswith("-") for arg in args):
        from hatcl.cli_sweep import hydra_main

        return hydra_main(args, run=run_from_config, plan=plan_run)
    from hatcl.training.interrupt import stop_signals

    with stop_signals() as stop:
        return _run_single(args, callbacks=callbacks, stop=stop)


def _run_single(args: Sequence[str], *, callbacks: Sequence, stop) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose_config(args)
    except (HydraException, OmegaConfBaseException) as error:
        return fail(rephrase_override_error(error, args))
    from hatcl.training.interrupt import RunInterrupted, WriteFailed
    from hatcl.training.loss_watch import TrainingDiverged

    try:
        result = run_from_config(cfg, callbacks=callbacks, stop=stop)
    except WriteFailed as error:
        return report_write_failure(error, args)
    except TrainingDiverged as error:
        return report_divergence(error)
    except USER_ERRORS as error:
        return fail(error)
    except RunInterrupted as interrupted:
        return report_interruption(interrupted, args)
    if stop:
        print(
            f"hatcl run: signal {int(stop.signum)} received after the run had finished; its "
            f"results are complete in {result.run_dir}",
            file=sys.stderr,
            flush=True,
        )
        return 128 + int(stop.signum)
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


def run_from_config(
    cfg: DictConfig,
    *,
    run_dir: str | Path | None = None,
    callbacks: Sequence = (),
    stop=None,
):
    """Check the whole of ``cfg`` (creating nothing), then run it; returns the RunResult.

    ``callbacks`` are :class:`hatcl.training.run_callbacks.RunCallback` observers of the run;
    ``stop`` a :class:`hatcl.training.interrupt.StopRequest` the caller routes signals to.

    Raises:
        ValueError, TypeError, FileNotFoundError: a refused configuration (nothing was written),
            or a failure of the run before its first checkpoint (what it wrote is removed, as
            after a Ctrl-C then).
        RunInterrupted: a stop signal; a run stopped before its first checkpoint leaves nothing.
        WriteFailed: a file of the run could not be written (``run_dir`` set).
    """
    plan = plan_run(cfg, run_dir=run_dir)
    from hatcl.preflight_resume import print_warnings
    from hatcl.training.interrupt import RunInterrupted
    from hatcl.training.runner import run_plan

    print_warnings(plan)
    if stop:  # a signal while the configuration was checked: nothing was started
        raise RunInterrupted(
            signum=int(stop.signum),
            task_id=0,
            step=None,
            total_steps=None,
            run_dir=plan.run_dir,
            checkpoint=None,
            resumable=plan.resume,
        )
    fresh = not plan.resume and not plan.run_dir.exists()
    try:
        return run_plan(plan, callbacks=callbacks, stop=stop)
    except OSError as error:
        failure = _write_failure(error, plan.run_dir)
        if failure is None:
            _clean_after_failure(error, plan, fresh=fresh)
            raise
        raise failure from None
    except (*USER_ERRORS, KeyboardInterrupt, RunInterrupted) as error:  # also Ctrl-C early
        _clean_after_failure(error, plan, fresh=fresh)
        raise


def _clean_after_failure(error: BaseException, plan, *, fresh: bool) -> None:
    error.hatcl_during_run = True  # tells data errors from configuration ones (error_kind)
    if not plan.resume and plan.config.trainer.checkpoints:
        _remove_unstarted(plan.run_dir, fresh=fresh)


def _write_failure(error: OSError, run_dir: Path):
    """``error`` as a :class:`WriteFailed` of the run folder, or None if it is something else."""
    from hatcl.training.interrupt import WriteFailed

    inside = error.filename is not None and Path(run_dir).resolve() in (
        Path(str(error.filename)).resolve().parents
    )
    if not isinstance(error, WriteFailed) and not (error.errno is not None and inside):
        return None
    if not isinstance(error, WriteFailed):
        error = WriteFailed(error.errno, error.strerror, str(error.filename))
    failure = error
    failure.run_dir = Path(run_dir)
    return failure


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
