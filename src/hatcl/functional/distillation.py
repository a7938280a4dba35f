"""Knowledge distillation loss of Learning without Forgetting (Li and Hoiem 2017, eq. 2)."""

from __future__ import annotations

import torch
from torch import Tensor


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, *, temperature: float
) -> Tensor:
    """Cross-entropy between temperature-softened teacher and student outputs, batch mean.

    ``-sum_j y'_j log yhat'_j`` with ``y' = softmax(teacher / T)`` and
    ``yhat' = softmax(student / T)`` (Li and Hoiem's ``y^(1/T)`` normalisation of probabilities
    equals the softmax of logits divided by T). No ``T**2`` factor, as in the paper.

    Args:
        student_logits: ``(N, C)`` logits of the model being trained.
        teacher_logits: ``(N, C)`` recorded logits of the old model (treated as constants).
        temperature: ``T > 0``; the paper uses 2.
    """
    target = torch.softmax(teacher_logits.detach() / temperature, dim=-1)
    log_prediction = torch.log_softmax(student_logits / temperature, dim=-1)
    return -(target * log_prediction).sum(-1).mean()
