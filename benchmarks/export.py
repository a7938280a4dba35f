"""What per-task export buys: size, multiply-adds and CPU latency, exported vs ``Run.predict``.

For every task of every given finished run: parameters and multiply-adds of task T's network
unpruned (every unit, the function ``Run.predict`` computes) and exported (masked-off units
removed); the largest logit difference and the accuracy of the exported program on the task's
test set next to the run's final accuracy; and the median CPU latency of one forward at batch 1
and 256, of the ``torch.export`` program (loaded back with ``torch.export.load``) and of
``Run.predict``. Prints a Markdown table and writes JSON::

    python benchmarks/export.py RUN [RUN ...] --out export.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _latency(call, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``call(x)`` over ``repeats`` calls after two warm-up calls."""
    times = []
    with torch.no_grad():
        for index in range(repeats + 2):
            start = time.perf_counter()
            call(x)
            if index >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _task_row(run, task_id: int, folder: Path, repeats: int) -> dict:
    from hatcl.product.export import task_network
    from hatcl.product.prune import count_macs, count_parameters

    split = run.data.tasks[task_id - 1].test
    like = next(run.model.parameters())
    x, y = split.x[:].to(like), split.y[:]
    full = task_network(run.model, task_id=task_id, prune=False)
    pruned = run.network(task_id)
    program = torch.export.load(run.export(task_id, folder / f"task{task_id}.pt2")).module()
    with torch.no_grad():
        logits = program(x)
    reference = run.predict(x, task_id=task_id)
    batch = x[torch.arange(256) % len(x)]
    row = {
        "task": task_id,
        "params_before": count_parameters(full),
        "params_after": count_parameters(pruned),
        "macs_before": count_macs(full, x[:1]),
        "macs_after": count_macs(pruned, x[:1]),
        "max_abs_diff": float((logits - reference).abs().max()),
        "max_abs_logit": float(reference.abs().max()),
        "accuracy_exported": int((logits.argmax(1) == y).sum()) / len(y),
        "accuracy_run": run.metrics["accuracy_matrix"][-1][task_id - 1],
    }
    for size, inputs in (("1", x[:1]), ("256", batch)):
        row[f"ms_exported_b{size}"] = 1e3 * _latency(program, inputs, repeats)
        row[f"ms_predict_b{size}"] = 1e3 * _latency(
            lambda z: run.predict(z, task_id=task_id), inputs, repeats
        )
    return row


HEADER = (
    "| task | params before | after | MACs before | after | max abs diff | acc (export / run) "
    "| ms b1 export / predict | ms b256 export / predict |\n|---|---|---|---|---|---|---|---|---|"
)


def _line(row: dict) -> str:
    return (
        f"| {row['task']} | {row['params_before']:,} | {row['params_after']:,} "
        f"({row['params_after'] / row['params_before']:.0%}) | {row['macs_before']:,} | "
        f"{row['macs_after']:,} ({row['macs_after'] / row['macs_before']:.0%}) | "
        f"{row['max_abs_diff']:.1e} | {row['accuracy_exported']:.4f} / {row['accuracy_run']:.4f} "
        f"| {row['ms_exported_b1']:.3f} / {row['ms_predict_b1']:.3f} "
        f"| {row['ms_exported_b256']:.2f} / {row['ms_predict_b256']:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run folders")
    parser.add_argument("--out", default="export.json", help="JSON of every row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per latency")
    args = parser.parse_args(argv)
    import hatcl

    torch.set_num_threads(args.threads)
    results = {}
    for folder in args.runs:
        run = hatcl.load(folder)
        print(f"\n{folder} ({run.config.algorithm.name}, {run.config.backbone.name})\n\n{HEADER}")
        rows = []
        with tempfile.TemporaryDirectory() as scratch:
            for task_id in range(1, run.num_tasks + 1):
                rows.append(_task_row(run, task_id, Path(scratch), args.repeats))
                print(_line(rows[-1]), flush=True)
        results[str(folder)] = rows
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    worst = max(row["max_abs_diff"] for rows in results.values() for row in rows)
    same = all(r["accuracy_exported"] == r["accuracy_run"] for v in results.values() for r in v)
    print(f"\nlargest logit difference {worst:.2e}; accuracies equal: {same}")
    return 0 if worst <= 1e-5 and same else 1


if __name__ == "__main__":
    sys.exit(main())
