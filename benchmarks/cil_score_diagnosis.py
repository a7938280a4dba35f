"""Why a task score picks the wrong task: per-task scores of a finished ``head=cil`` run.

For a per-task-network run (with task checkpoints), after its last task: each seen task's test
inputs run under every seen task; per raw task score (no calibration) it prints the task-id
confusion matrix (rows: true task, columns: predicted task, fractions), the mean score under
each task, the fraction of samples whose best score is tied (ties go to the lower task) and,
for ``max_softmax``, the fraction whose best probability is exactly 1 in the run's dtype.

    hatcl run data=split_digits seed=1 trainer.max_epochs=5 algorithm=hat head=cil \\
        output_dir=runs/hat_cil
    python benchmarks/cil_score_diagnosis.py runs/hat_cil
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from hatcl.functional.task_scores import predict_task
from hatcl.inference.evaluator import task_logits
from hatcl.inference.registries import TASK_SCORES, resolve_task_score
from hatcl.training.reevaluate import load_run


@torch.no_grad()
def logits_by_true_task(folder: Path) -> list[list[torch.Tensor]]:
    """Per true task, its test inputs' logits under each seen task (after the last task)."""
    config, data, load = load_run(folder)
    model = load(data.tasks[-1].task_id)
    like = next(model.parameters())
    seen, batch = len(data.tasks), config.trainer.eval_batch_size
    result = []
    for task in data.tasks:
        parts = []
        for start in range(0, len(task.test), batch):
            index = torch.arange(start, min(start + batch, len(task.test)))
            inputs = task.test.x[index].to(device=like.device, dtype=like.dtype)
            parts.append(task_logits(model, inputs, seen=seen))
        result.append([torch.cat([part[t] for part in parts]) for t in range(seen)])
    return result


def _row(values: Sequence[float]) -> str:
    return " ".join(f"{v:7.3f}" for v in values)


def report(logits: list[list[torch.Tensor]], score_name: str) -> str:
    """The confusion matrix, mean scores, ties and saturation of one raw score."""
    score = resolve_task_score(score_name)
    seen = len(logits)
    lines = [f"## {score_name} (rows: true task; predicted-task fractions | mean score per task)"]
    correct = ties = saturated = total = 0
    for true, blocks in enumerate(logits):
        scores = torch.stack([score(block) for block in blocks], dim=1)
        task = predict_task(scores)
        fractions = torch.bincount(task, minlength=seen).double() / len(task)
        top = scores.topk(min(2, seen), dim=1).values
        ties += int((top[:, 0] == top[:, -1]).sum()) if seen > 1 else 0
        saturated += int((scores.amax(1) == 1).sum())
        correct += int((task == true).sum())
        total += len(task)
        lines.append(
            f"task {true + 1}: {_row(fractions.tolist())} | {_row(scores.mean(0).tolist())}"
        )
    lines.append(
        f"task-id accuracy {correct / total:.4f}; best score tied {ties / total:.4f}; "
        f"best score exactly 1: {saturated / total:.4f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished per-task-network head=cil run")
    parser.add_argument("--scores", nargs="+", default=list(TASK_SCORES), help="task scores")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logits = logits_by_true_task(args.run)
    for name in args.scores:
        print(report(logits, name), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
