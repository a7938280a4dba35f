"""Registries of task scores and score calibrations (torch-free), and the score resolver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hatcl.registry import Registry, import_path_target, is_import_path

TASK_SCORES = Registry("cil.task_score")
TASK_SCORES.add(
    "max_softmax", "hatcl.functional.task_scores:max_softmax", summary="max class probability"
)
TASK_SCORES.add("max_logit", "hatcl.functional.task_scores:max_logit", summary="max logit")
TASK_SCORES.add("energy", "hatcl.functional.task_scores:energy", summary="logsumexp of logits")
TASK_SCORES.add(
    "neg_entropy", "hatcl.functional.task_scores:neg_entropy", summary="sum p log p of softmax"
)

CALIBRATIONS = Registry("cil.calibration")
CALIBRATIONS.add("none", "hatcl.inference.calibration:no_calibration", summary="raw scores")
CALIBRATIONS.add(
    "affine",
    "hatcl.inference.calibration:affine_calibration",
    summary="w_t * s_t + b_t per task, fitted on a small calibration set (kept data)",
)


def resolve_task_score(name: object) -> Callable[[Any], Any]:
    """The score function of ``cil.task_score``: a registered name or ``package.module:fn``.

    Raises:
        ValueError: an unknown name, a module that cannot be imported or a missing function.
    """
    if is_import_path(name) and name not in TASK_SCORES:
        expected = "a function fn(logits) -> scores of shape (batch,)"
        function = import_path_target(
            name, parameter="cil.task_score", expected=expected, noun="function"
        )
        if not callable(function):
            raise ValueError(f"cil.task_score={name!r} is not callable (expected {expected})")
        return function
    return TASK_SCORES.get(TASK_SCORES.validate(name, parameter="cil.task_score"))
