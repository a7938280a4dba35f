"""``hatcl.load(run_folder)``: a finished run back as a :class:`Run` (config, data, model, ...).

Loading checks the folder first (``config.yaml``, ``metrics.json`` and the last task's verified
checkpoint) and refuses an unfinished or damaged run naming the file; the data and the model are
built on first use.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hatcl.registry import Registry

TASK_AGNOSTIC_PREDICTION = Registry("task-agnostic prediction")
"""Per head name, ``predict(run, x) -> logits`` without a task id (none registered for ``til``
and ``dil``: their HAT-family masks need the task id)."""


def read_run_checkpoint(run_dir: Path, *, task_id: int) -> dict[str, Any]:
    """The one place reading a run's checkpoint: task ``task_id``'s verified payload.

    Raises:
        ValueError: the file is missing or damaged (the message names it).
    """
    from hatcl.training.checkpoint import checkpoint_path, load_checkpoint

    return load_checkpoint(checkpoint_path(run_dir, task_id))


def restore_run(payload: dict[str, Any], *, module: Any, num_classes: list[int]) -> None:
    """Load a payload of :func:`read_run_checkpoint` into a freshly built module.

    The global random number generators are left as they were (a checkpoint carries the run's).
    """
    from hatcl.training.checkpoint import restore, rng_states, set_rng_states

    states = rng_states()
    try:
        restore(payload, module=module, num_classes=num_classes)
    finally:
        set_rng_states(states)


class Run:
    """A finished run: its configuration, task sequence, trained model, predictions and tests.

    Built by :func:`load`. Attributes: ``folder``, ``config`` (the typed
    ``ExperimentConfig``), ``metrics`` (``metrics.json``), ``num_tasks``; ``data``, ``module``
    and ``model`` are built when first used.
    """

    def __init__(self, *, folder: Path, config: Any, metrics: dict, payload: dict) -> None:
        self.folder = folder
        self.config = config
        self.metrics = metrics
        self.num_tasks = int(payload["completed_tasks"])
        self._payload = payload

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, {self.num_tasks} tasks, {self.config.algorithm.name})"

    @cached_property
    def data(self):
        """The run's task sequence (``ContinualData``), rebuilt from its configuration."""
        from hatcl.data.build import build_run_data

        return build_run_data(self.config.data, seed=self.config.seed)

    @cached_property
    def module(self):
        """The Lightning module holding the model and algorithm, restored from the checkpoint."""
        from hatcl.training.experiment import build_algorithm, build_model, build_module

        with torch.random.fork_rng():  # building must not move the caller's RNGs
            algorithm = build_algorithm(self.config.algorithm)
            model = build_model(self.config, data=self.data, algorithm=algorithm)
        module = build_module(self.config, model=model, algorithm=algorithm)
        if str(self.config.trainer.precision).startswith("64"):
            module.double()  # before restoring: float64 weights load into float64 tensors
        num_classes = [task.num_classes for task in self.data.tasks]
        restore_run(self._payload, module=module, num_classes=num_classes)
        return module.eval()

    @property
    def model(self):
        """The trained ``ContinualModel`` (backbone and heads)."""
        return self.module.model

    def predict(self, x: torch.Tensor, *, task_id: int | None = None) -> torch.Tensor:
        """Logits of ``x`` (inputs as the task's test split holds them) for task ``task_id``.

        Without a task id, runs whose head predicts the task first dispatch to it; a run with
        task-incremental heads refuses (its masks and heads need the task id).
        """
        if task_id is None:
            head = self.config.head
            if head not in TASK_AGNOSTIC_PREDICTION:
                raise ValueError(
                    f"this run has head {head!r}, which needs the task id: pass task_id=1.."
                    f"{self.num_tasks}"
                )
            return TASK_AGNOSTIC_PREDICTION.get(head)(self, x)
        self.check_task(task_id)
        from hatcl.masking.stage import Stage

        model = self.model.eval()
        like = next(model.parameters())
        with torch.no_grad():
            inputs = x.to(device=like.device, dtype=like.dtype)
            return model(inputs, task_id=task_id, stage=Stage.TEST).logits

    def test(self) -> list[float]:
        """Test accuracy of every task (the last row of ``metrics.json``'s accuracy matrix)."""
        from hatcl.training.task_loop import test_tasks

        return test_tasks(self.module, self.data.tasks[: self.num_tasks], config=self.config)

    def network(self, task_id: int) -> torch.nn.Sequential:
        """Task ``task_id``'s compact network of plain torch modules (see ``hatcl export``)."""
        self.check_task(task_id)
        from hatcl.product.export import task_network

        return task_network(self.model, task_id=task_id)

    def export(
        self, task_id: int, path: str | os.PathLike[str], *, format: str = "exported"
    ) -> Path:
        """Write task ``task_id``'s compact network to ``path``; returns the path.

        Args:
            task_id: the task (1..``num_tasks``).
            path: the file to write (it must not exist; its folder must).
            format: ``exported`` (a ``torch.export`` ``.pt2``) or ``state_dict``.
        """
        from hatcl.product.export import check_export_target, write_task

        self.check_task(task_id)
        check_export_target(path, format=format)
        example = self.data.tasks[task_id - 1].test.x[:2]
        like = next(self.model.parameters())
        return write_task(self.network(task_id), path=path, format=format, example=example.to(like))

    def check_task(self, task_id: object) -> int:
        """``task_id`` if it is one of the run's tasks; ``TypeError``/``ValueError`` otherwise."""
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            raise TypeError(f"task_id must be an int in 1..{self.num_tasks}, got {task_id!r}")
        if not 1 <= task_id <= self.num_tasks:
            raise ValueError(f"task_id must be in 1..{self.num_tasks}, got {task_id}")
        return task_id


def load(run_folder: str | os.PathLike[str]) -> Run:
    """The finished run in ``run_folder`` (what ``hatcl run`` wrote).

    Raises:
        FileNotFoundError: the folder or its ``config.yaml`` does not exist.
        ValueError: the run is unfinished (no ``metrics.json``), or a file is damaged (the
            message names it).
    """
    import yaml

    from hatcl.training.experiment import ExperimentConfig
    from hatcl.training.resume_check import read_config_text

    folder = Path(run_folder)
    if not (folder / "config.yaml").is_file():
        raise FileNotFoundError(
            f"hatcl.load: {str(folder)!r} is not a run folder (no config.yaml); pass the "
            "output_dir of a finished `hatcl run`"
        )
    config = ExperimentConfig.from_mapping(yaml.safe_load(read_config_text(folder / "config.yaml")))
    metrics = _read_metrics(folder / "metrics.json")
    if not config.trainer.checkpoints:
        raise ValueError(
            f"hatcl.load: {str(folder)!r} was run with trainer.checkpoints=false and keeps no "
            "trained model; run it again with checkpoints"
        )
    tasks = len(metrics["accuracy_matrix"])
    payload = read_run_checkpoint(folder, task_id=tasks)
    if int(payload.get("completed_tasks", -1)) != tasks:
        raise ValueError(
            f"hatcl.load: {payload['file']!r} records {payload.get('completed_tasks')} finished "
            f"tasks, metrics.json {tasks}: the run folder is inconsistent"
        )
    return Run(folder=folder, config=config, metrics=metrics, payload=payload)


def _read_metrics(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(
            f"hatcl.load: {str(path)!r} does not exist: the run is unfinished (resume it with "
            f"`hatcl run resume={str(path.parent)}`)"
        )
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        rows = metrics["accuracy_matrix"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"hatcl.load: {str(path)!r} is damaged ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"hatcl.load: {str(path)!r} holds no accuracy matrix rows")
    return metrics
