"""Runs of ``hatcl run`` signalled at evenly spread moments, as processes (tests start this).

    python signal_moments.py OUT.json WORK_DIR N override ...

Runs the command once in this process (the uninterrupted result; everything a run loads is then
loaded), then forks: one uninterrupted run (its wall time ``D`` measured), ``N`` runs each sent
SIGTERM or SIGINT (alternately) at ``0.9 D (i + 0.5) / N`` (a run that ends before its moment is
recorded as not signalled), and a resume of every interrupted run that kept its folder. A forked
child ends as the interpreter would end the command (``sys.exit(main())``: an escaping
``SystemExit(None)`` is exit 0, another escaping exception prints its traceback and is exit 1).
``OUT.json`` records, per moment, the signal, the exit codes and what the run printed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from hatcl.cli import main
from hatcl.training import runner  # noqa: F401 - loaded before the forks, as a run loads it


def _child(args: list[str], log: Path) -> None:
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the fork's own streams
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except BaseException:  # noqa: BLE001 - what the interpreter would print
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: list[str], log: Path, *, signum: int = 0, delay: float = 0.0) -> tuple[int, bool]:
    """Fork a run, signal it after ``delay`` s; its exit code (-n: signal n), whether signalled."""
    pid = os.fork()
    if pid == 0:
        _child(args, log)
    signalled = False
    if signum:
        time.sleep(delay)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:  # it ended before the moment came
            return os.waitstatus_to_exitcode(status), False
        os.kill(pid, signum)
        signalled = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), signalled


def main_moments(out: Path, work: Path, count: int, overrides: list[str]) -> None:
    base = ["run", *overrides]
    code = main([*base, f"output_dir={work / 'full'}"])
    started = time.perf_counter()
    code = code or _run([*base, f"output_dir={work / 'timed'}"], work / "timed.log")[0]
    duration = time.perf_counter() - started
    records = []
    for index in range(count):
        signum = signal.SIGTERM if index % 2 == 0 else signal.SIGINT
        folder = work / f"run_{index}"
        log = work / f"run_{index}.log"
        delay = 0.9 * duration * (index + 0.5) / count  # 0.9: runs vary in length
        args = [*base, f"output_dir={folder}"]
        exit_code, signalled = _run(args, log, signum=signum, delay=delay)
        record = {
            "delay": delay,
            "signal": int(signum),
            "signalled": signalled,
            "exit": exit_code,
            "stderr": log.read_text(),
            "kept": folder.is_dir(),
        }
        if (folder / "config.yaml").is_file() and not (folder / "metrics.json").exists():
            resume_log = work / f"resume_{index}.log"
            record["resume_exit"] = _run([*base, f"resume={folder}"], resume_log)[0]
            record["resume_stderr"] = resume_log.read_text()
        records.append(record)
    out.write_text(json.dumps({"full_exit": code, "duration": duration, "runs": records}))


if __name__ == "__main__":
    main_moments(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
