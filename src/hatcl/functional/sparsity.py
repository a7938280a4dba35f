"""Mask sparsity regularisers of the HAT family (``original`` and ``cross``).

Per layer ``l``, with the soft training mask ``m`` and the previous cumulative mask ``M``:
available ``A_l = sum(1 - M)``, occupied ``O_l = sum(m * (1 - M))``, previously used
``P_l = sum(M)`` and reused ``Q_l = sum(m * M)``.

Guard: every ratio whose denominator is ``SPARSITY_MIN_DENOMINATOR`` (10) units or fewer is 0. So a
nearly full network (10 or fewer free units) stops being regularised. In ``cross`` mode the whole
reuse term ``1 - Q / P`` is 0 where ``P`` is 10 units or fewer (nothing to reuse yet, e.g. at the
first task), as in the reference. The guard is computed with ``torch.where`` on a safe
denominator: no host synchronisation and no ``nan`` in the gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "SPARSITY_MIN_DENOMINATOR",
    "SparsityLinearForm",
    "SparsityResult",
    "cross_sparsity",
    "cross_sparsity_linear",
    "original_sparsity",
    "original_sparsity_linear",
]

SPARSITY_MIN_DENOMINATOR = 10
"""A ratio whose denominator is at most this many units is 0 (nearly full network: no reg)."""


class SparsityResult(NamedTuple):
    """Result of a sparsity regulariser.

    Attributes:
        reg: 0-dim regularisation value, differentiable in the training masks.
        per_layer: per-layer network sparsity ``R_l``, each 0-dim and detached.
    """

    reg: Tensor
    per_layer: tuple[Tensor, ...]


def _guarded_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """Return ``numerator / denominator``, or 0 if ``denominator <= SPARSITY_MIN_DENOMINATOR``."""
    ok = denominator > SPARSITY_MIN_DENOMINATOR
    safe = torch.where(ok, denominator, torch.ones_like(denominator))
    return torch.where(ok, numerator / safe, torch.zeros_like(numerator))


def _reuse_term(reused: Tensor, used: Tensor) -> Tensor:
    """Return ``1 - reused / used``, or 0 if ``used <= SPARSITY_MIN_DENOMINATOR``."""
    ok = used > SPARSITY_MIN_DENOMINATOR
    safe = torch.where(ok, used, torch.ones_like(used))
    return torch.where(ok, 1 - reused / safe, torch.zeros_like(reused))


def _validate(masks: Sequence[Tensor], cumulative: Sequence[Tensor]) -> None:
    if len(masks) == 0:
        raise ValueError("masks must hold at least one layer, got an empty sequence")
    if len(masks) != len(cumulative):
        raise ValueError(
            f"masks has {len(masks)} layers but cumulative has {len(cumulative)} layers"
        )
    for index, (mask, cum) in enumerate(zip(masks, cumulative)):
        if mask.shape != cum.shape:
            raise ValueError(
                f"layer {index}: mask shape {tuple(mask.shape)} differs from cumulative shape "
                f"{tuple(cum.shape)}"
            )


def _free_sums(
    masks: Sequence[Tensor], cumulative: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """Return per-layer ``A`` and ``O`` (0-dim each): all that ``original`` needs."""
    available, occupied = [], []
    for mask, cum in zip(masks, cumulative):
        free = 1 - cum.detach().to(mask.dtype)
        available.append(free.sum())
        occupied.append((mask * free).sum())
    return available, occupied


def _layer_sums(
    masks: Sequence[Tensor], cumulative: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """Return per-layer ``A``, ``O``, ``P``, ``Q`` (0-dim each)."""
    available, occupied = _free_sums(masks, cumulative)
    used, reused = [], []
    for mask, cum in zip(masks, cumulative):
        cum = cum.detach().to(mask.dtype)
        used.append(cum.sum())
        reused.append((mask * cum).sum())
    return available, occupied, used, reused


def original_sparsity(masks: Sequence[Tensor], cumulative: Sequence[Tensor]) -> SparsityResult:
    """Return the ``original`` regulariser ``sum O / sum A`` and ``R_l = O_l / A_l``.

    Args:
        masks: soft training masks, one per layer (with gradient).
        cumulative: previous cumulative masks, same shapes (no gradient used).

    Returns:
        The 0-dim differentiable ``reg`` and the detached per-layer sparsities.

    Raises:
        ValueError: if the sequences are empty or do not match in length or shapes.
    """
    _validate(masks, cumulative)
    available, occupied = _free_sums(masks, cumulative)
    reg = _guarded_ratio(torch.stack(occupied).sum(), torch.stack(available).sum())
    per_layer = tuple(_guarded_ratio(o, a).detach() for o, a in zip(occupied, available))
    return SparsityResult(reg=reg, per_layer=per_layer)


def cross_sparsity(masks: Sequence[Tensor], cumulative: Sequence[Tensor]) -> SparsityResult:
    """Return the ``cross`` regulariser, which also rewards reusing previously used units.

    ``reg = (sum O / sum A + (1 - sum Q / sum P)) / 2`` and
    ``R_l = (O_l / A_l + (1 - Q_l / P_l)) / 2``. Guards (denominator of
    ``SPARSITY_MIN_DENOMINATOR`` or fewer units): the ratio ``O / A`` is 0, and the whole reuse
    term ``1 - Q / P`` is 0. For example on the first task (``P = 0``) ``reg = sum O / sum A / 2``
    and ``R_l = O_l / A_l / 2``.

    Args:
        masks: soft training masks, one per layer (with gradient).
        cumulative: previous cumulative masks, same shapes (no gradient used).

    Returns:
        The 0-dim differentiable ``reg`` and the detached per-layer sparsities.

    Raises:
        ValueError: if the sequences are empty or do not match in length or shapes.
    """
    _validate(masks, cumulative)
    available, occupied, used, reused = _layer_sums(masks, cumulative)
    free_term = _guarded_ratio(torch.stack(occupied).sum(), torch.stack(available).sum())
    reuse_term = _reuse_term(torch.stack(reused).sum(), torch.stack(used).sum())
    reg = (free_term + reuse_term) / 2
    per_layer = tuple(
        ((_guarded_ratio(o, a) + _reuse_term(q, p)) / 2).detach()
        for o, a, q, p in zip(occupied, available, reused, used)
    )
    return SparsityResult(reg=reg, per_layer=per_layer)


# -- the same regularisers as one affine map of the concatenated masks -----------------------
#
# With the cumulative masks fixed (a whole task), every quantity above is affine in the training
# masks: ``O_l`` and ``Q_l`` are weighted sums of ``m`` and the guards depend on ``M`` only. So
# ``reg`` and every ``R_l`` are rows of ``W @ m + b`` with ``m`` the masks of all layers
# concatenated: computed once per task, a step evaluates the regulariser and all ``R_l`` in
# one matrix-vector product (and its backward in one more), whatever the number of layers.


class SparsityLinearForm(NamedTuple):
    """``reg`` and the per-layer ``R_l`` as ``weights @ m + offset`` (row 0: ``reg``).

    Attributes:
        weights: ``(1 + layers, units)``; ``units`` is the total over the layers in order.
        offset: ``(1 + layers,)``.
    """

    weights: Tensor
    offset: Tensor

    def evaluate(self, flat_masks: Tensor) -> SparsityResult:
        """The regulariser and the detached ``R_l`` of the concatenated masks ``flat_masks``."""
        values = torch.addmv(self.offset, self.weights, flat_masks)
        return SparsityResult(reg=values[0], per_layer=tuple(values[1:].detach().unbind()))


def _guarded_inverse(denominator: Tensor) -> Tensor:
    """``1 / denominator``, or 0 where ``denominator <= SPARSITY_MIN_DENOMINATOR``."""
    ok = denominator > SPARSITY_MIN_DENOMINATOR
    return torch.where(ok, 1 / torch.where(ok, denominator, torch.ones_like(denominator)), 0.0)


def _linear_rows(cumulative: Sequence[Tensor], *, reuse: bool) -> tuple[Tensor, Tensor]:
    if len(cumulative) == 0:
        raise ValueError("cumulative must hold at least one layer, got an empty sequence")
    cum = [c.detach().reshape(-1) for c in cumulative]
    flat = torch.cat(cum)
    sizes = [c.numel() for c in cum]
    weights = flat.new_zeros(1 + len(cum), flat.numel())
    offset = flat.new_zeros(1 + len(cum))
    scale = 0.5 if reuse else 1.0
    weights[0] = scale * (1 - flat) * _guarded_inverse((1 - flat).sum())
    if reuse:
        used = _guarded_inverse(flat.sum())
        weights[0] -= scale * flat * used
        offset[0] = scale * (used > 0).to(flat.dtype)
    start = 0
    for row, (c, size) in enumerate(zip(cum, sizes), start=1):
        part = weights[row, start : start + size]
        part += scale * (1 - c) * _guarded_inverse((1 - c).sum())
        if reuse:
            used = _guarded_inverse(c.sum())
            part -= scale * c * used
            offset[row] = scale * (used > 0).to(flat.dtype)
        start += size
    return weights, offset


def original_sparsity_linear(cumulative: Sequence[Tensor]) -> SparsityLinearForm:
    """:func:`original_sparsity` for the cumulative masks ``cumulative`` as an affine map.

    ``reg = sum_l sum(m_l (1 - M_l)) / A`` and ``R_l = sum(m_l (1 - M_l)) / A_l``, each 0 under
    the guard; so row 0 of ``weights`` is ``(1 - M) / A`` and row ``l`` is ``(1 - M_l) / A_l``
    on layer ``l``'s units (0 elsewhere); ``offset`` is 0.

    Raises:
        ValueError: if ``cumulative`` is empty.
    """
    return SparsityLinearForm(*_linear_rows(cumulative, reuse=False))


def cross_sparsity_linear(cumulative: Sequence[Tensor]) -> SparsityLinearForm:
    """:func:`cross_sparsity` for the cumulative masks ``cumulative`` as an affine map.

    ``(O / A + 1 - Q / P) / 2 = sum m ((1 - M) / A - M / P) / 2 + 1 / 2`` where each guarded
    ratio is 0 (and the reuse term ``1 - Q / P`` wholly 0, offset included) when its
    denominator is ``SPARSITY_MIN_DENOMINATOR`` units or fewer; per layer likewise.

    Raises:
        ValueError: if ``cumulative`` is empty.
    """
    return SparsityLinearForm(*_linear_rows(cumulative, reuse=True))
