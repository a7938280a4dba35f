"""Embedding-gradient compensation of HAT."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["embedding_compensation_factor"]

_LOG2 = math.log(2.0)


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
    e = embedding.detach().to(work_dtype)
    clamped = torch.clamp(scale * e, -clamp_threshold, clamp_threshold)
    log_ratio = 2.0 * (_log_cosh(clamped / 2.0) - _log_cosh(e / 2.0))
    factor = (s_max / scale) * torch.exp(log_ratio)
    out_dtype = embedding.dtype if embedding.is_floating_point() else torch.get_default_dtype()
    return factor.to(out_dtype)
