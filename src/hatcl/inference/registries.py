"""Registries of task scores and score calibrations (torch-free), and the score resolver."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hatcl.registry import Registry

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
    if isinstance(name, str) and ":" in name and name not in TASK_SCORES:
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                f"cil.task_score={name!r}: cannot import module {module_name!r} ({error}); is "
                "its folder on PYTHONPATH (or the package installed)?"
            ) from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ValueError(
                f"cil.task_score={name!r}: {module_name} has no function {attribute!r} "
                "(expected fn(logits) -> scores of shape (batch,))"
            )
        return function
    return TASK_SCORES.get(TASK_SCORES.validate(name, parameter="cil.task_score"))
