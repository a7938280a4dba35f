"""The ``cil`` configuration section: how a task is predicted without its id."""

from __future__ import annotations

from dataclasses import dataclass

from hatcl.validation import check_int


@dataclass(frozen=True, kw_only=True)
class CilConfig:
    """Task-agnostic inference of per-task-network algorithms (``head=cil`` and ``dil``).

    Attributes:
        task_score: a ``TASK_SCORES`` name (``max_softmax``, ``max_logit``, ``energy``,
            ``neg_entropy``) or ``package.module:fn`` with ``fn(logits) -> (batch,) scores``.
        calibration: ``none`` or ``affine`` (per-task w and b fitted after each task on a
            calibration set kept from the seen tasks' validation splits).
        calibration_per_class: calibration samples per class (>= 1).
        task_chunk: at most this many seen tasks per forward when the network can run several
            tasks' masks at once (1: one forward per task; memory grows with it).
    """

    task_score: str = "max_softmax"
    calibration: str = "none"
    calibration_per_class: int = 20
    task_chunk: int = 8

    def __post_init__(self) -> None:
        from hatcl.inference.registries import CALIBRATIONS, resolve_task_score

        resolve_task_score(self.task_score)
        CALIBRATIONS.validate(self.calibration, parameter="cil.calibration")
        check_int(self.calibration_per_class, parameter="cil.calibration_per_class", low=1)
        check_int(self.task_chunk, parameter="cil.task_chunk", low=1)
