"""Embedding-gradient compensation of HAT."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["embedding_compensation_factor"]

_LOG2 = math.log(2.0)
_COSH_SAFE = 700.0
"""Below this clamp threshold ``cosh(clamp(s e))`` is finite in float64 (cosh(710) overflows)."""


def _log_cosh(x: Tensor) -> Tensor:
    """Return ``log(cosh(x))`` without overflow: ``|x| + log1p(exp(-2|x|)) - log 2``."""
    a = x.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - _LOG2


def embedding_compensation_factor(
    embedding: Tensor, *, scale: float, s_max: float, clamp_threshold: float
) -> Tensor:
    """Return the factor that multiplies a task embedding's gradient.

    ``(s_max / s) * (cosh(clamp(s * e, -c, c)) + 1) / (cosh(e) + 1)`` with ``c = clamp_threshold``.

    Numerics: ``cosh(x) + 1 = 2 cosh(x / 2)^2``, so the ratio is evaluated as
    ``exp(2 * (log cosh(clamp(s e, -c, c) / 2) - log cosh(e / 2)))`` with an overflow-free
    ``log cosh``. The result is therefore finite and correct where the naive formula would
    overflow: for a huge ``|e|`` (``cosh(e) = inf`` in float32 beyond about 89) the factor tends to
    its true limit 0 instead of becoming ``0`` by accident or ``nan`` (``inf / inf``) for a large
    ``c``. It can only be ``inf`` where the exact value itself exceeds the dtype's range.
    Where ``c <= 700`` (every practical setting) and float64 is available, the ratio is
    evaluated directly in float64 instead: ``cosh(clamp(s e))`` is then finite and
    ``cosh(e) = inf`` gives the true limit 0, with fewer elementwise passes (the two forms
    agree to float64 rounding).

    Args:
        embedding: task embedding ``e`` (any shape).
        scale: the step's annealed scale ``s`` (> 0).
        s_max: the maximum scale (> 0).
        clamp_threshold: ``c`` (> 0).

    Returns:
        Tensor of the embedding's shape and floating dtype, without gradient (computed in
        float64 internally, except on MPS).

    Raises:
        ValueError: if ``scale``, ``s_max`` or ``clamp_threshold`` is not positive.
    """
    for name, value in (("scale", scale), ("s_max", s_max), ("clamp_threshold", clamp_threshold)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    # float64 keeps the exp of a log-difference exact to float32 precision (MPS has no float64).
    work_dtype = embedding.dtype if embedding.device.type == "mps" else torch.float64
    if work_dtype == torch.float64 and clamp_threshold <= _COSH_SAFE:
        factor = _direct_factor(embedding.detach(), scale, s_max, clamp_threshold)
    else:
        e = embedding.detach().to(work_dtype)
        clamped = torch.clamp(scale * e, -clamp_threshold, clamp_threshold)
        log_ratio = 2.0 * (_log_cosh(clamped / 2.0) - _log_cosh(e / 2.0))
        factor = (s_max / scale) * torch.exp(log_ratio)
    out_dtype = embedding.dtype if embedding.is_floating_point() else torch.get_default_dtype()
    return factor.to(out_dtype)


def _direct_factor(embedding: Tensor, scale: float, s_max: float, clamp_threshold: float) -> Tensor:
    """``(s_max / s) (cosh(clamp(s e)) + 1) / (cosh(e) + 1)`` in float64, in few passes.

    Row 0 of one float64 buffer becomes ``clamp(s e)`` and row 1 stays ``e``, so both
    ``cosh(.) + 1`` are one pass each over the buffer.
    """
    both = embedding.reshape(1, -1).expand(2, -1).to(torch.float64, copy=True)
    both[0].mul_(scale).clamp_(-clamp_threshold, clamp_threshold)
    both.cosh_().add_(1.0)
    return both[0].mul_(s_max / scale).div_(both[1]).view_as(embedding)
