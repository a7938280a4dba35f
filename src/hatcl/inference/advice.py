"""The note after a run that predicted tasks from raw scores (``cil.calibration=none``)."""

from __future__ import annotations

UNCALIBRATED_NOTE = (
    "note: the task of each test input was predicted from raw {score} scores "
    "(cil.calibration=none, the spec's default). Raw scores of different tasks' networks are "
    "not on one scale: on split digits (seed 1, 5 epochs) HAT's task-agnostic AA was {raw} with "
    "max_softmax/none and {calibrated} with cil.task_score={best} cil.calibration=affine "
    "(finetuning: {finetuning}); see docs/scenarios.md#which-score"
)
"""Filled with the measured numbers of docs/scenarios.md (section "Which score")."""

MEASURED = {
    "raw": "0.203",
    "calibrated": "0.388",
    "best": "max_logit",
    "finetuning": "0.183",
}


def uncalibrated_note(score: str) -> str:
    """The note for a run that compared raw ``score`` scores."""
    return UNCALIBRATED_NOTE.format(score=score, **MEASURED)


def note_task_prediction(console, *, model, cil) -> None:
    """Print :func:`uncalibrated_note` after a per-task-network run predicting tasks from raw
    scores (``head=cil`` or ``dil``).

    Args:
        console: a rich console.
        model: the trained :class:`~hatcl.backbones.model.ContinualModel`.
        cil: the run's :class:`~hatcl.inference.config.CilConfig`.
    """
    heads = model.heads
    if getattr(heads, "task_id_at_test", True) or not heads.per_task_network:
        return
    if cil.calibration == "none":
        console.print(uncalibrated_note(cil.task_score))
