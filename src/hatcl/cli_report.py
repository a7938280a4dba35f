"""How ``hatcl run`` reports the end of a run that did not finish: one line or paragraph, a code.

Exit codes: 2 a refused configuration (or a data error found late), 1 a run that failed on its
way (a file that cannot be written, a diverged loss), ``128 + signal`` a run stopped by a signal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_CONFIG_ERROR = 2
EXIT_WRITE_ERROR = 1  # a run that failed on its way (a write error, a diverged loss)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)


def _resume_args(args: Sequence[str], run_dir) -> str:
    kept = [a for a in args if a.partition("=")[0].lstrip("+~") not in ("output_dir", "resume")]
    return f"hatcl run {' '.join([*kept, f'resume={run_dir}'])}"


def report_interruption(stop, args: Sequence[str]) -> int:
    """Print one line: where the run stopped and the command that resumes it; the exit code."""
    if not Path(stop.run_dir, "config.yaml").is_file():
        advice = "nothing of the run was kept: run the same command again"
    elif not stop.resumable:
        advice = "no checkpoint was written (trainer.checkpoints=false): it cannot be resumed"
    else:
        advice = f"resume with: {_resume_args(args, stop.run_dir)}"
    print(f"{stop}; {advice}", file=sys.stderr, flush=True)
    return stop.exit_code


def report_divergence(error) -> int:
    """One paragraph: the task and step where the loss became non-finite; exit code 1."""
    print(
        f"hatcl run: {error}. The checkpoints of the tasks before are intact; rerun with other "
        "settings (or trainer.stop_on_nonfinite=false to train on regardless)",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_WRITE_ERROR


def report_write_failure(error, args: Sequence[str]) -> int:
    """One paragraph: the file that could not be written, the cause, how to go on; exit 1."""
    folder = error.run_dir
    kept = sorted(Path(folder, "checkpoints").glob("*.ckpt")) if folder is not None else []
    if kept:
        advice = (
            f"The checkpoints written before are intact ({', '.join(p.name for p in kept)}); "
            f"once the cause is fixed, resume with: {_resume_args(args, folder)}"
        )
    else:
        advice = "No task had been checkpointed yet: run the same command again once it is fixed."
    print(
        f"hatcl run: could not write {error.filename}: {error.strerror}. The run stopped there "
        f"(free disk space, restore the folder's write permission, or recreate it). {advice}",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_WRITE_ERROR


def fail(error: BaseException) -> int:
    """One line ``hatcl: <kind>: <message>`` on stderr; the exit code 2."""
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
