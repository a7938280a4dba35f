"""Re-evaluate a finished run under other task scores and calibrations, without retraining.

Task scores and calibrations act at test time only, so every combination can be measured on the
same trained model: the run's per-task checkpoints are loaded one after the other and the seen
tasks tested again under each (score, calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from hatcl.inference.evaluator import TaskAgnosticEvaluator
from hatcl.inference.registries import resolve_task_score


def reevaluate(
    run_dir: str | Path, *, combinations: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, list[list[float]]]]:
    """The TAg, TAw and task-id matrices of a run under each (score, calibration).

    Args:
        run_dir: a finished ``head=cil``/``dil`` run with its task checkpoints
            (``trainer.checkpoints=true``).
        combinations: ``(cil.task_score, cil.calibration)`` pairs.

    Returns:
        ``{(score, calibration): {"accuracy_matrix": ..., "accuracy_matrix_task_aware": ...,
        "task_id_accuracy": ...}}`` (the last one absent when no task is predicted).
    """
    from hatcl.data.build import build_run_data
    from hatcl.training.checkpoint import checkpoint_path, load_checkpoint, restore
    from hatcl.training.experiment import (
        ExperimentConfig,
        build_algorithm,
        build_model,
        build_module,
    )
    from hatcl.training.task_loop import test_tasks

    folder = Path(run_dir)
    config = ExperimentConfig.from_mapping(yaml.safe_load((folder / "config.yaml").read_text()))
    data = build_run_data(config.data, seed=config.seed)
    algorithm = build_algorithm(config.algorithm)
    module = build_module(config, model=build_model(config, data=data, algorithm=algorithm),
                          algorithm=algorithm)
    if module.evaluator is None:
        raise ValueError(f"{folder} is a head={config.head} run: its tests use the task id")
    num_classes = [task.num_classes for task in data.tasks]
    results: dict[tuple[str, str], dict[str, list[list[float]]]] = {
        pair: {"accuracy_matrix": [], "accuracy_matrix_task_aware": [], "task_id_accuracy": []}
        for pair in combinations
    }
    for task in data.tasks:
        restore(load_checkpoint(checkpoint_path(folder, task.task_id)), module=module,
                num_classes=num_classes)
        module.eval()
        for (score, calibration), matrices in results.items():
            module.evaluator = TaskAgnosticEvaluator(
                score=resolve_task_score(score),
                calibration=calibration,
                calibration_per_class=config.cil.calibration_per_class,
                seed=config.seed,
            )
            row = test_tasks(module, data.tasks[: task.task_id], config=config)
            matrices["accuracy_matrix"].append(row)
            matrices["accuracy_matrix_task_aware"].append(module.test_report["accuracy_task_aware"])
            matrices["task_id_accuracy"].append(module.test_report.get("task_id_accuracy", []))
    return results
