"""``hatcl run`` with Hydra's own flags: ``-m`` sweeps (launchers), ``--config-dir``, ``--cfg``.

Each job is checked and run like a single run. Its folder is ``output_dir`` when the command
sets it (``output_dir=runs/\\${algorithm.name}_\\${seed}`` gives every job its own), else
Hydra's ``<hydra.sweep.dir>/<job number>``; the job folder Hydra made and the run did not use
is removed again.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig


def hydra_main(args: Sequence[str], *, run: Callable, plan: Callable) -> int:
    """Run ``args`` through ``hydra.main``; return the exit code of the command.

    ``run`` and ``plan`` are :func:`hatcl.cli_run.run_from_config` and
    :func:`hatcl.cli_run.plan_run` (passed in: this module is below ``cli_run``).
    """
    import hydra

    from hatcl.cli_report import EXIT_CONFIG_ERROR

    args = with_sweep_folder(args)
    steps = {"run": run, "plan": plan}

    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def _task(cfg: DictConfig) -> None:
        code = run_job(cfg, pinned=output_dir_pinned(args), args=args, steps=steps)
        if code:
            raise SystemExit(code)

    saved = sys.argv
    sys.argv = ["hatcl run", *args]
    try:
        _task()
    except SystemExit as stop:  # a job's error (exit 1, 2, 130, 143) or Hydra's own exit
        if stop.code is None or isinstance(stop.code, int):
            return int(stop.code or 0)
        return EXIT_CONFIG_ERROR
    finally:
        sys.argv = saved
    return 0


def _key(arg: str) -> str:
    return arg.partition("=")[0].lstrip("+~")


def with_sweep_folder(args: Sequence[str]) -> list[str]:
    """``-m ... resume=DIR``: the sweep continues in DIR (``hydra.sweep.dir=DIR`` added)."""
    args = list(args)
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    resume = next((a.partition("=")[2] for a in args if _key(a) == "resume"), None)
    if multirun and resume and not any(_key(a) == "hydra.sweep.dir" for a in args):
        args.append(f"hydra.sweep.dir={resume}")
    return args


def output_dir_pinned(args: Sequence[str]) -> bool:
    """Whether the command sets ``output_dir`` itself (then each job runs there)."""
    return any(_key(arg) == "output_dir" for arg in args)


def job_folder(cfg: DictConfig, hydra_config) -> Path:
    """Where a sweep job's run is written: its ``output_dir`` when the command set one (each
    job's own, e.g. ``runs/${seed}``), else Hydra's job folder."""
    if output_dir_pinned(hydra_config.overrides.task):
        return Path(cfg.get("output_dir"))
    return Path(hydra_config.runtime.output_dir)


def run_job(cfg: DictConfig, *, pinned: bool, args: Sequence[str], steps: dict) -> int:
    """One job of a sweep (or the one run with Hydra's flags); its exit code."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_config = HydraConfig.get()
    sweeping = hydra_config.mode == RunMode.MULTIRUN
    job_dir = Path(hydra_config.runtime.output_dir)
    run_dir = None if pinned or not sweeping else job_dir
    overrides = list(hydra_config.overrides.task)
    if sweeping:
        target = job_folder(cfg, hydra_config)
        print(sweep_header(hydra_config, folder=target), flush=True)
        if cfg.get("resume") is not None:  # a sweep continued: this job's own state decides
            if (target / "metrics.json").is_file():
                print(f"   finished earlier in {target}: skipped", flush=True)
                return 0
            cfg.resume = str(target) if (target / "config.yaml").is_file() else None
        resume_line = [a for a in args if _key(a) not in ("resume", "hydra.sweep.dir")]
        overrides = [*resume_line, f"resume={hydra_config.sweep.dir}"]
    try:
        sweep_dir = Path(hydra_config.sweep.dir) if sweeping else None
        return _run_reported(
            cfg, run_dir=run_dir, overrides=overrides, sweep_dir=sweep_dir, steps=steps
        )
    finally:
        if run_dir is None:
            _remove_if_empty(job_dir)


def _run_reported(
    cfg: DictConfig, *, run_dir, overrides: list[str], sweep_dir, steps: dict
) -> int:
    """Run ``cfg``; every outcome reported as ``hatcl run`` reports it; the exit code.

    In a sweep (``sweep_dir`` set) ``reference_run=auto`` is the sweep's shared reference.
    """
    from hatcl.cli_report import (
        USER_ERRORS,
        fail,
        report_divergence,
        report_interruption,
        report_write_failure,
    )
    from hatcl.training.interrupt import RunInterrupted, WriteFailed, stop_signals
    from hatcl.training.loss_watch import TrainingDiverged

    with stop_signals() as stop:
        try:
            if sweep_dir is not None and cfg.get("reference_run") == "auto":
                cfg.reference_run = str(shared_reference(cfg, sweep_dir, plan=steps["plan"]))
            steps["run"](cfg, run_dir=run_dir, stop=stop)
        except WriteFailed as error:
            return report_write_failure(error, overrides)
        except TrainingDiverged as error:
            return report_divergence(error)
        except USER_ERRORS as error:
            return fail(error)
        except RunInterrupted as interrupted:
            if sweep_dir is None:
                return report_interruption(interrupted, overrides)
            print(
                f"{interrupted}; the sweep stopped. Continue it (finished jobs are skipped, this "
                f"one resumed) with: hatcl run {' '.join(overrides)}",
                file=sys.stderr,
                flush=True,
            )
            return interrupted.exit_code
    return 128 + int(stop.signum) if stop else 0


def shared_reference(cfg: DictConfig, sweep_dir: Path, *, plan: Callable) -> Path:
    """The sweep's ``independent`` FWT reference for ``cfg``, trained by the first job needing it.

    ``reference_run=auto`` in a sweep: jobs whose reference is the same run (same data, seed,
    backbone, optimizer and trainer; any algorithm) share one, kept in
    ``<sweep dir>/references/<key>`` (``key``: a hash of the reference's configuration).
    """
    import hashlib
    import shutil

    from rich.console import Console

    from hatcl.training.reference import config_yaml, reference_config
    from hatcl.training.runner import run_experiment

    derived = reference_config(plan(cfg).config)
    text = config_yaml(derived)
    folder = sweep_dir / "references" / hashlib.sha256(text.encode()).hexdigest()[:12]
    if (folder / "metrics.json").is_file():
        print(f"   FWT reference: {folder} (shared)", flush=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished reference of ours: trained again
    print(f"   training the shared 'independent' FWT reference in {folder}", flush=True)
    run_experiment(derived, run_dir=folder, resolved_config=text, console=Console(quiet=True))
    return folder


def _remove_if_empty(folder: Path) -> None:
    """Remove the job folder Hydra created when the run used another one (and left it empty)."""
    try:
        if folder.is_dir() and not any(folder.iterdir()) and folder.resolve() != Path.cwd():
            folder.rmdir()
    except OSError:
        pass


#: A backslash Hydra puts before a special character of a sweep's override (``$\{seed\}``): the
#: header shows the override as it was typed (``${seed}``).
_HYDRA_ESCAPE = re.compile(r"\\([\\()\[\]{}:=, \t])")


def sweep_header(hydra_config, *, folder=None) -> str:
    """The line printed before each job of a sweep: its number, overrides and folder."""
    from omegaconf import MISSING

    job = hydra_config.job
    number = job.get("num", MISSING) if hasattr(job, "get") else getattr(job, "num", None)
    shown = [_HYDRA_ESCAPE.sub(r"\1", override) for override in hydra_config.overrides.task]
    overrides = " ".join(shown) or "(no overrides)"
    label = "" if number in (None, MISSING) else f" {number}"
    target = hydra_config.runtime.output_dir if folder is None else folder
    return f"== job{label}: {overrides} -> {target}"
