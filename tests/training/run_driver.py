"""A run of ``hatcl run`` overrides with run callbacks, as a script (tests start it as a process).

    python run_driver.py [--kill-after-task T] [--digest DIR] override ...

``--kill-after-task`` SIGKILLs the process right after task T is checkpointed; ``--digest``
makes every process write its state digest (``StateDigest``). Lightning's DDP launcher starts
the other ranks by running this same script again.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from hatcl.cli_run import compose_config, run_from_config
from hatcl.training.run_callbacks import RunCallback, StateDigest


class KillAfterTask(RunCallback):
    """SIGKILL this process once ``task_id`` is saved (a crash nothing can intercept)."""

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id

    def on_task_saved(self, *, task_id: int, run_dir) -> None:
        if task_id == self.task_id:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-after-task", type=int)
    parser.add_argument("--digest")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    callbacks: list[RunCallback] = []
    if args.kill_after_task is not None:
        callbacks.append(KillAfterTask(args.kill_after_task))
    if args.digest:
        callbacks.append(StateDigest(args.digest))
    run_from_config(compose_config(args.overrides), callbacks=callbacks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
