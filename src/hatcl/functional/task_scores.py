"""Task scores and their affine calibration: how much an input looks like a task's data.

Task-agnostic inference for per-task-network algorithms (spec/class-incremental.md; Kim et al.,
CLOM 2022): run the input under every seen task, score each task's logits, pick the best task.
Every score maps logits ``(N, k)`` to one value per sample ``(N,)``; higher means "more like this
task".
"""

from __future__ import annotations

import torch
from torch import Tensor


def max_softmax(logits: Tensor) -> Tensor:
    """``max_c softmax(logits)_c`` (the maximum class probability)."""
    return torch.softmax(logits, dim=-1).amax(dim=-1)


def max_logit(logits: Tensor) -> Tensor:
    """``max_c logits_c``."""
    return logits.amax(dim=-1)


def energy(logits: Tensor) -> Tensor:
    """``logsumexp_c logits_c`` (the negative free energy)."""
    return torch.logsumexp(logits, dim=-1)


def neg_entropy(logits: Tensor) -> Tensor:
    """``sum_c p_c log p_c`` with ``p = softmax(logits)`` (zero for a one-hot prediction)."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (log_p.exp() * log_p).sum(dim=-1)


def predict_task(scores: Tensor) -> Tensor:
    """0-based index of the best task per sample; ties go to the lower task (first maximum).

    Args:
        scores: ``(N, T)`` (calibrated) scores of the T seen tasks.
    """
    best = scores.amax(dim=1, keepdim=True)
    tied = scores == best
    # argmax over a bool tensor is not guaranteed to be the first maximum on every backend:
    # take the smallest index among the tied tasks explicitly.
    index = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    return torch.where(tied, index, scores.shape[1]).amin(dim=1)


def affine(scores: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``s'_tau = w_tau * s_tau + b_tau`` per task (column) of ``scores`` ``(N, T)``."""
    return scores * weight + bias


def calibration_loss(scores: Tensor, tasks: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Mean cross-entropy of ``softmax_tau(w_tau s_tau + b_tau)`` against the true 0-based task."""
    return torch.nn.functional.cross_entropy(affine(scores, weight, bias), tasks)


def fit_affine(scores: Tensor, tasks: Tensor, *, steps: int = 100) -> tuple[Tensor, Tensor]:
    """The (w, b) per task minimising :func:`calibration_loss` (CLOM's calibration).

    The loss is convex in (w, b) (a linear map followed by log-softmax), so L-BFGS from
    ``w = 1, b = 0`` reaches its minimum; it is deterministic on a given device. The loss does not
    change when every b moves by the same constant: the returned b sums to zero.

    Args:
        scores: ``(N, T)`` scores of N calibration samples under each of the T seen tasks.
        tasks: ``(N,)`` int64 true task of each sample, 0-based.
        steps: L-BFGS iterations.
    """
    scores = scores.detach()
    weight = torch.ones(scores.shape[1], dtype=scores.dtype, device=scores.device)
    bias = torch.zeros_like(weight)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = calibration_loss(scores, tasks, weight, bias)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    bias = bias.detach()
    return weight.detach(), bias - bias.mean()
