"""Cost of task-agnostic inference (``head=cil``) against the number of seen tasks.

HAT on the MLP 784-256-100-64 with T tasks of 2 classes (masks from untrained embeddings: the
cost does not depend on the weights), one test batch of 1024 inputs: the seconds of one
task-aware forward (the task id given) and of one task-agnostic prediction (the batch under every
seen task's masks, scores, calibration, argmax), the median of ``--repeats`` timings, one thread.
The task-agnostic prediction is timed twice in the same process, interleaved: one forward per
seen task (``cil.task_chunk=1``, the loop) and ``--task-chunk`` tasks per forward (batched).

    python benchmarks/cil_inference_cost.py --tasks 10 50
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch

import hatcl
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.functional.task_scores import max_softmax
from hatcl.masking.stage import Stage


def _median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(
    tasks: int, *, batch: int = 1024, repeats: int = 5, task_chunk: int = 8
) -> dict[str, float]:
    """Seconds per test batch, task-aware and task-agnostic, after ``tasks`` tasks."""
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(1, 28, 28), hidden_dims=(256, 100, 64), masked=True)
    learner = hatcl.Learner(backbone=backbone, algorithm=HAT(), head="cil")
    for task_id in range(1, tasks + 1):
        learner.start_task(task_id, num_classes=2, num_batches=1)
        learner.end_task()
    learner.eval()
    model, evaluator = learner.model, learner.evaluator
    evaluator.score = max_softmax
    evaluator.weight = torch.ones(tasks)
    evaluator.bias = torch.zeros(tasks)  # an affine calibration costs as much as any
    x = torch.randn(batch, 1, 28, 28)

    def agnostic(chunk: int):
        evaluator.task_chunk = chunk
        return evaluator.predict(model, x, seen=tasks)

    looped, batched = [], []
    with torch.no_grad():
        aware = _median_seconds(lambda: model(x, task_id=1, stage=Stage.TEST), repeats)
        for _ in range(repeats):  # interleaved: the machine's load hits both alike
            looped.append(_median_seconds(lambda: agnostic(1), 1))
            batched.append(_median_seconds(lambda: agnostic(task_chunk), 1))
    return {
        "tasks": tasks,
        "task_aware_s": aware,
        "looped_s": statistics.median(looped),
        "batched_s": statistics.median(batched),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--task-chunk", type=int, default=8, help="tasks per batched forward")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        "| seen tasks | task-aware (s) | task-agnostic, loop (s) | task-agnostic, batched (s) "
        "| batched / task-aware | loop / batched |"
    )
    print("|---|---|---|---|---|---|")
    for tasks in args.tasks:
        row = measure(tasks, repeats=args.repeats, task_chunk=args.task_chunk)
        aware, looped, batched = row["task_aware_s"], row["looped_s"], row["batched_s"]
        print(
            f"| {tasks} | {aware:.4f} | {looped:.4f} | {batched:.4f} | {batched / aware:.1f} "
            f"| {looped / batched:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
