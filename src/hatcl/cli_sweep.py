"""``hatcl run`` with Hydra's own flags: ``-m`` sweeps (launchers), ``--config-dir``, ``--cfg``.

Each job is checked and run like a single run. Its folder is ``output_dir`` when the command
sets it (``output_dir=runs/\\${algorithm.name}_\\${seed}`` gives every job its own), else
Hydra's ``<hydra.sweep.dir>/<job number>``; the job folder Hydra made and the run did not use
is removed again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig


def hydra_main(args: Sequence[str]) -> int:
    """Run ``args`` through ``hydra.main``; return the exit code of the command."""
    import hydra

    from hatcl.cli_run import EXIT_CONFIG_ERROR

    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def _task(cfg: DictConfig) -> None:
        code = run_job(cfg, pinned=output_dir_pinned(args))
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


def output_dir_pinned(args: Sequence[str]) -> bool:
    """Whether the command sets ``output_dir`` itself (then each job runs there)."""
    return any(arg.partition("=")[0].lstrip("+~") == "output_dir" for arg in args)


def run_job(cfg: DictConfig, *, pinned: bool) -> int:
    """One job of a sweep (or the one run with Hydra's flags); its exit code."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hatcl.cli_run import (
        USER_ERRORS,
        _fail,
        report_divergence,
        report_interruption,
        report_write_failure,
        run_from_config,
    )
    from hatcl.training.interrupt import RunInterrupted, WriteFailed, stop_signals
    from hatcl.training.loss_watch import TrainingDiverged

    hydra_config = HydraConfig.get()
    sweeping = hydra_config.mode == RunMode.MULTIRUN
    job_dir = Path(hydra_config.runtime.output_dir)
    run_dir = None if pinned or not sweeping else job_dir
    overrides = list(hydra_config.overrides.task)
    if sweeping:
        target = cfg.get("output_dir") if pinned else job_dir
        print(sweep_header(hydra_config, folder=target), flush=True)
    with stop_signals() as stop:
        try:
            run_from_config(cfg, run_dir=run_dir, stop=stop)
        except WriteFailed as error:
            return report_write_failure(error, overrides)
        except TrainingDiverged as error:
            return report_divergence(error)
        except USER_ERRORS as error:
            return _fail(error)
        except RunInterrupted as interrupted:
            return report_interruption(interrupted, overrides)
        finally:
            if run_dir is None:
                _remove_if_empty(job_dir)
    return 128 + int(stop.signum) if stop else 0


def _remove_if_empty(folder: Path) -> None:
    """Remove the job folder Hydra created when the run used another one (and left it empty)."""
    try:
        if folder.is_dir() and not any(folder.iterdir()) and folder.resolve() != Path.cwd():
            folder.rmdir()
    except OSError:
        pass


def sweep_header(hydra_config, *, folder=None) -> str:
    """The line printed before each job of a sweep: its number, overrides and folder."""
    from omegaconf import MISSING

    job = hydra_config.job
    number = job.get("num", MISSING) if hasattr(job, "get") else getattr(job, "num", None)
    overrides = " ".join(hydra_config.overrides.task) or "(no overrides)"
    label = "" if number in (None, MISSING) else f" {number}"
    target = hydra_config.runtime.output_dir if folder is None else folder
    return f"== job{label}: {overrides} -> {target}"
