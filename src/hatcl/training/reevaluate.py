"""Re-evaluate a finished run under other task scores and calibrations, without retraining.

Task scores and calibrations act at test time only, so every combination can be measured on the
same trained model: the run's per-task checkpoints are loaded one after the other, each seen
task's test inputs (and the calibration set) run once under every seen task, and every
(score, calibration) pair is applied to those logits, with the counting of the run itself
(:meth:`TaskAgnosticEvaluator.counts_from_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from hatcl.inference.evaluator import TaskAgnosticEvaluator, calibration_logits, task_logits
from hatcl.inference.registries import resolve_task_score

Matrices = dict[str, list[list[float]]]


def reevaluate(
    run_dir: str | Path, *, combinations: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Matrices]:
    """The TAg, TAw and task-id matrices of a per-task-network run under each pair.

    Args:
        run_dir: a finished ``head=cil``/``dil`` run of a per-task-network algorithm, with its
            task checkpoints (``trainer.checkpoints=true``).
        combinations: ``(cil.task_score, cil.calibration)`` pairs.

    Returns:
        ``{(score, calibration): {"accuracy_matrix": ..., "accuracy_matrix_task_aware": ...,
        "task_id_accuracy": ...}}``.
    """
    folder = Path(run_dir)
    config, data, load = load_run(folder)
    results = {pair: _empty() for pair in combinations}
    for task in data.tasks:
        model = load(task.task_id)
        rows = _rows(model, data.tasks[: task.task_id], config=config, pairs=combinations)
        for pair, row in rows.items():
            for key, values in row.items():
                results[pair][key].append(values)
    return results


def load_run(folder: Path):
    """``(config, data, load)`` of a finished per-task-network run; ``load(task_id)`` restores
    the task's checkpoint and returns the model in eval mode.

    Raises:
        ValueError: the run is not a per-task-network run under ``head=cil`` or ``dil``.
    """
    from hatcl.data.build import build_run_data
    from hatcl.training.checkpoint import checkpoint_path, load_checkpoint, restore
    from hatcl.training.experiment import (
        ExperimentConfig,
        build_algorithm,
        build_model,
        build_module,
    )

    config = ExperimentConfig.from_mapping(yaml.safe_load((folder / "config.yaml").read_text()))
    data = build_run_data(config.data, seed=config.seed)
    algorithm = build_algorithm(config.algorithm)
    model = build_model(config, data=data, algorithm=algorithm)
    module = build_module(config, model=model, algorithm=algorithm)
    if module.evaluator is None or not model.heads.per_task_network:
        raise ValueError(
            f"{folder}: task scores apply to per-task-network runs under head=cil or dil"
        )
    num_classes = [task.num_classes for task in data.tasks]

    def load(task_id: int):
        restore(
            load_checkpoint(checkpoint_path(folder, task_id)),
            module=module,
            num_classes=num_classes,
        )
        return model.eval()

    return config, data, load


def _empty() -> Matrices:
    return {"accuracy_matrix": [], "accuracy_matrix_task_aware": [], "task_id_accuracy": []}


@torch.no_grad()
def _rows(model, tasks, *, config, pairs) -> dict[tuple[str, str], dict[str, list[float]]]:
    """One matrix row per pair after the last of ``tasks``: the logits are computed once."""
    batch_size = config.trainer.eval_batch_size
    like = next(model.parameters())
    calibration = None
    if any(name != "none" for _, name in pairs):
        calibration = calibration_logits(
            model,
            tasks,
            per_class=config.cil.calibration_per_class,
            seed=config.seed,
            batch_size=batch_size,
        )
    tests = []
    for task in tasks:
        split = task.test
        for start in range(0, len(split), batch_size):
            index = torch.arange(start, min(start + batch_size, len(split)))
            inputs = split.x[index].to(device=like.device, dtype=like.dtype)
            logits = task_logits(model, inputs, seen=len(tasks))
            tests.append((task.task_id, logits, split.y[index].to(like.device)))
    rows = {}
    for score, name in pairs:
        evaluator = TaskAgnosticEvaluator(score=resolve_task_score(score), calibration=name)
        if name != "none":
            evaluator.fit(*calibration)
        counts = torch.zeros(len(tasks), 4, dtype=torch.long)
        for task_id, logits, targets in tests:
            hits = evaluator.counts_from_logits(model.heads, logits, targets, task_id=task_id)
            counts[task_id - 1, :3] += hits.cpu()
            counts[task_id - 1, 3] += len(targets)
        total = counts[:, 3].clamp(min=1).double()
        rows[(score, name)] = {
            "accuracy_matrix": (counts[:, 0] / total).tolist(),
            "accuracy_matrix_task_aware": (counts[:, 1] / total).tolist(),
            "task_id_accuracy": (counts[:, 2] / total).tolist(),
        }
    return rows
