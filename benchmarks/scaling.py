"""Cost of a run against the number of tasks: peak memory, data build, train and test time.

For each T, one whole ``hatcl run`` (HAT, permuted Fashion-MNIST, MLP 784-256-256, batch 64,
one epoch per task, one thread; checkpoints, loggers and figures as configured by default) runs
as its own process under ``/usr/bin/time``; the table gives its peak RSS, the seconds spent
loading the source and building the task sequence's data (the source is loaded once, then the
plans are made: the per-task figure is (build - load) / T), and the mean seconds per task of
training and of testing
(test after task t covers all t seen tasks, so its mean grows with T; the last column is the
test of all T tasks after the last one).

    python benchmarks/scaling.py                        # T = 5, 20, 50, 100 (about 20 minutes)
    python benchmarks/scaling.py --tasks 5 20 --out /tmp/scaling --json scaling.json
    python benchmarks/scaling.py --quick                # digits, 2 tiny runs (seconds)

Every run's folder stays under ``--out`` (a fresh temporary directory by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = (5, 20, 50, 100)
RUN = [
    "data=permuted_fashion_mnist",
    "algorithm=hat",
    "backbone.hidden_dims=[256,256]",
    "trainer.max_epochs=1",
    "trainer.batch_size=64",
    "trainer.num_threads=1",
    "trainer.enable_progress_bar=false",
]
QUICK = [
    "data=permuted_digits",
    "algorithm=hat",
    "backbone.hidden_dims=[32,32]",
    "trainer.max_epochs=1",
    "trainer.num_threads=1",
    "trainer.enable_progress_bar=false",
    "trainer.figures=false",
    "trainer.loggers=[]",
]

# Runs `hatcl run` with the runner's data build, training and testing timed (by wrapping the
# module-level functions the task loop calls); writes the timings as JSON to argv[1].
_TIMED_RUN = r"""
import json, sys, time
import hatcl.data.base as base
import hatcl.training.runner as runner
from hatcl.cli import main

timings = {"build": [], "load": [], "train": [], "test": []}

def timed(kind, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timings[kind].append(time.perf_counter() - started)
    return wrapper

base.load_source = timed("load", base.load_source)
runner.build_run_data = timed("build", runner.build_run_data)
runner.train_task = timed("train", runner.train_task)
runner.test_tasks = timed("test", runner.test_tasks)
code = main(["run", *sys.argv[2:]])
with open(sys.argv[1], "w") as stream:
    json.dump(timings, stream)
sys.exit(code)
"""


def measure(num_tasks: int, *, out: Path, overrides: list[str]) -> dict:
    """Run one ``hatcl run`` with ``num_tasks`` tasks; its peak RSS, CPU and phase timings."""
    folder = out / f"tasks{num_tasks}"
    timing_file, rusage_file = out / f"tasks{num_tasks}.timing.json", out / f"tasks{num_tasks}.time"
    command = [
        "/usr/bin/time",
        "-f",
        "%M %U %S %e",
        "-o",
        str(rusage_file),
        sys.executable,
        "-c",
        _TIMED_RUN,
        str(timing_file),
        *overrides,
        f"data.num_tasks={num_tasks}",
        f"output_dir={folder}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    peak_kb, user, system, wall = rusage_file.read_text().split()[-4:]
    timings = json.loads(timing_file.read_text())
    return {
        "tasks": num_tasks,
        "peak_rss_gb": int(peak_kb) / 1024**2,
        "cpu_seconds": float(user) + float(system),
        "wall_seconds": float(wall),
        "load_seconds": sum(timings["load"]),
        "build_seconds": sum(timings["build"]),
        "build_ms_per_task": 1e3 * (sum(timings["build"]) - sum(timings["load"])) / num_tasks,
        "train_seconds_per_task": sum(timings["train"]) / num_tasks,
        "test_seconds_per_task": sum(timings["test"]) / num_tasks,
        "last_test_seconds": timings["test"][-1],
        "run_dir": str(folder),
    }


def table(rows: list[dict]) -> str:
    """The Markdown table of the measurements."""
    lines = [
        "| tasks | peak RSS (GB) | source load (s) | data build (s) | build per task (ms) "
        "| train s/task "
        "| test s/task (mean) | test of all tasks after the last (s) | CPU (s) | wall (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tasks']} | {r['peak_rss_gb']:.2f} | {r['load_seconds']:.2f} | "
            f"{r['build_seconds']:.2f} | "
            f"{r['build_ms_per_task']:.1f} | {r['train_seconds_per_task']:.2f} | "
            f"{r['test_seconds_per_task']:.2f} | {r['last_test_seconds']:.2f} | "
            f"{r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=list(TASKS))
    parser.add_argument("--out", default=None, help="folder of the runs (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--quick", action="store_true", help="digits, tiny MLP (a smoke test)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="hatcl-scaling-"))
    out.mkdir(parents=True, exist_ok=True)
    overrides = QUICK if args.quick else RUN
    rows = []
    for num_tasks in args.tasks:
        rows.append(measure(num_tasks, out=out, overrides=overrides))
        print(f"T={num_tasks}: {json.dumps(rows[-1])}", flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
