"""Stopping a run on SIGINT/SIGTERM with a checkpoint of where it is, and step checkpoints.

While the task loop runs, SIGINT and SIGTERM only set a flag (a second SIGINT stops at once).
The flag is read before every training step: the run then writes ``checkpoints/in_task_<t>.ckpt``
(the state after the last finished step: model, algorithm accumulators, optimizer, scheduler,
RNG states and the position in the task's batch order) and raises :class:`RunInterrupted`; the
command prints one line and exits with ``128 + signal`` (130, 143). A flag set between tasks
stops the run after the task's own checkpoint. ``trainer.checkpoint_every_n_steps`` writes the
same in-task checkpoint every n steps, bounding what a SIGKILL loses (the check before each
step is :class:`hatcl.training.step_events.InTaskCheckpoints`). This module needs no
Lightning, so the command can catch :class:`RunInterrupted` without loading it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The signals that stop a run with a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
IN_TASK_PREFIX = "in_task_"


class RunInterrupted(Exception):  # noqa: N818 - an outcome, not an error
    """The run stopped on a signal; where it was and whether it can be resumed.

    Attributes:
        signum: the signal received.
        task_id: the task in progress (or the last finished one, ``step`` None).
        step: steps of the task done; ``None`` if the run stopped between tasks.
        total_steps: the task's steps in all.
        run_dir: the run folder.
        checkpoint: the checkpoint written (``None`` with ``trainer.checkpoints=false``).
        resumable: whether ``resume=run_dir`` continues the run (default: a checkpoint exists).
    """

    def __init__(
        self,
        *,
        signum: int,
        task_id: int,
        step: int | None,
        total_steps: int | None,
        run_dir: Path,
        checkpoint: Path | None,
        resumable: bool | None = None,
    ) -> None:
        self.signum = signum
        self.task_id = task_id
        self.step = step
        self.total_steps = total_steps
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.resumable = checkpoint is not None if resumable is None else resumable
        if step is not None:
            where = f"during task {task_id}, step {step}/{total_steps}"
        else:
            where = f"after task {task_id}" if task_id else "before the first task"
        super().__init__(f"interrupted {where}")

    @property
    def exit_code(self) -> int:
        """``128 + signal``, as a shell reports a process ended by that signal."""
        return 128 + int(self.signum)


class WriteFailed(OSError):
    """A file of the run could not be written (disk full, permission lost, folder removed).

    An ``OSError`` whose ``filename`` is the file and ``strerror`` the cause; ``run_dir`` (set by
    the command) is the run folder to resume.
    """

    run_dir: Path | None = None

    @classmethod
    def from_error(cls, error: BaseException, *, path: str | Path) -> WriteFailed:
        """The write failure of ``path``, its cause the first ``OSError`` in ``error``'s chain."""
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, OSError) and cause.strerror:
            return cls(cause.errno, cause.strerror, str(path))
        return cls(None, " ".join(str(error).split())[:200], str(path))


class StopRequest:
    """The stop flag the signal handlers set (the first signal received wins)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: Any) -> None:
        """Signal handler: remember the signal; a second SIGINT interrupts at once."""
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a :class:`StopRequest` while the block runs (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, request.handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def in_task_path(run_dir: str | Path, task_id: int) -> Path:
    """``<run_dir>/checkpoints/in_task_<task_id>.ckpt``."""
    return Path(run_dir) / "checkpoints" / f"{IN_TASK_PREFIX}{task_id}.ckpt"
