"""A run of ``hatcl run`` overrides with run callbacks, as a script (tests start it as a process).

    python run_driver.py [--kill-after-task T] [--signal-at T:S:SIG] [--digest DIR]
        [--replay-dump DIR] override ...

``--kill-after-task`` SIGKILLs the process right after task T is checkpointed; ``--signal-at``
sends signal SIG (INT, TERM, KILL) to the process before step S of task T; ``--digest`` makes
every process write its state digest (``StateDigest``); ``--replay-dump DIR`` makes every
process save the training inputs its replay algorithm saw and its memory at the end. The exit
code is the command's (``hatcl run``'s). Lightning's DDP launcher starts the other ranks by
running this same script again.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import torch

from hatcl.cli_run import run_command
from hatcl.training.run_callbacks import RunCallback, StateDigest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared observers
from signal_at import SignalAt  # noqa: E402


class ReplayDump(RunCallback):
    """Record the inputs of every training batch a replay algorithm sees; save them with the
    memory's slots at the end of the run, one file per process (``rank_<r>.pt``)."""

    def __init__(self, folder: str) -> None:
        from hatcl.algorithms.replay import Replay

        self.folder, self.seen = Path(folder), []
        original = Replay.augment_inputs

        def recording(algorithm, inputs):
            self.seen.append(inputs.detach().clone())
            return original(algorithm, inputs)

        Replay.augment_inputs = recording

    def on_run_end(self, *, module, metrics: dict, rank: int) -> None:
        memory = module.algorithm.memory
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"seen": torch.cat(self.seen), "inputs": memory.inputs, "fill": memory.fill()}
        torch.save(payload, self.folder / f"rank_{rank}.pt")


def signal_at(text: str) -> SignalAt:
    """``T:S:SIG`` (e.g. ``2:7:TERM``) as a :class:`SignalAt`."""
    task_id, step, name = text.split(":")
    return SignalAt(task_id=int(task_id), step=int(step), signum=getattr(signal, f"SIG{name}"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-after-task", type=int)
    parser.add_argument("--signal-at", type=signal_at)
    parser.add_argument("--digest")
    parser.add_argument("--replay-dump")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    callbacks: list[RunCallback] = []
    if args.kill_after_task is not None:
        callbacks.append(SignalAt(task_id=args.kill_after_task, step=None, signum=signal.SIGKILL))
    if args.signal_at is not None:
        callbacks.append(args.signal_at)
    if args.digest:
        callbacks.append(StateDigest(args.digest))
    if args.replay_dump:
        callbacks.append(ReplayDump(args.replay_dump))
    return run_command(args.overrides, callbacks=callbacks)


if __name__ == "__main__":
    sys.exit(main())
