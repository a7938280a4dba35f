"""Score calibrations (``cil.calibration``) and the seeded calibration set (kept as indices)."""

from __future__ import annotations

import torch
from torch import Tensor

from hatcl.functional.task_scores import fit_affine
from hatcl.seeding import derive_seed


def no_calibration(scores: Tensor, tasks: Tensor) -> tuple[Tensor, Tensor] | None:
    """``none``: the raw scores are compared (nothing is fitted)."""
    del scores, tasks
    return None


def affine_calibration(scores: Tensor, tasks: Tensor) -> tuple[Tensor, Tensor] | None:
    """``affine``: (w, b) per task minimising the cross-entropy over tasks (CLOM)."""
    return fit_affine(scores, tasks)


def calibration_indices(labels: Tensor, *, per_class: int, seed: int, task_id: int) -> Tensor:
    """Positions in a task's validation split of its calibration samples, sorted.

    Up to ``per_class`` samples of every class, drawn with a generator seeded by the run seed
    and the task id, so the same run always keeps the same samples.

    Args:
        labels: the validation split's labels (the task's own labels).
    """
    generator = torch.Generator().manual_seed(derive_seed(seed, "calibration", task_id))
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    chosen = [order[shuffled == c][:per_class] for c in torch.unique(labels).tolist()]
    if not chosen:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(torch.cat(chosen)).values
