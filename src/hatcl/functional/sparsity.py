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
    "LayerSparsity",
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


class LayerSparsity(NamedTuple):
    """Every layer's ``R_l`` from the concatenated masks, with the task's constants.

    Computed as :func:`original_sparsity` / :func:`cross_sparsity` compute it (the same sums
    over the same entries, the same divisions), so the values are bitwise theirs: a product
    with the free (and used) units, one sum per layer, then elementwise ops on ``(layers,)``.
    """

    free: Tensor
    used: Tensor
    sizes: tuple[int, ...]
    available: Tensor
    available_ok: Tensor | None
    used_sum: Tensor
    used_ok: Tensor
    reuse: bool

    def evaluate(self, flat_masks: Tensor) -> Tensor:
        """``(layers,)``: R_l of every layer for the concatenated masks (no gradient kept)."""
        flat_masks = flat_masks.detach()
        occupied = torch.stack([p.sum() for p in (flat_masks * self.free).split(self.sizes)])
        ratio = occupied / self.available
        if self.available_ok is not None:  # None: every layer has more than the guard
            ratio = ratio * self.available_ok
        if not self.reuse:
            return ratio
        reused = torch.stack([p.sum() for p in (flat_masks * self.used).split(self.sizes)])
        return (ratio + (1 - reused / self.used_sum) * self.used_ok) / 2


class SparsityLinearForm(NamedTuple):
    """``reg`` and the per-layer ``R_l`` as ``weights @ m + offset`` (row 0: ``reg``).

    Attributes:
        weights: ``(1 + layers, units)``; ``units`` is the total over the layers in order.
        offset: ``(1 + layers,)``.
        layers: the exact per-layer evaluation of rows 1.. (what training reads).
    """

    weights: Tensor
    offset: Tensor
    layers: LayerSparsity

    def evaluate(self, flat_masks: Tensor) -> SparsityResult:
        """The regulariser and the detached ``R_l`` of the concatenated masks ``flat_masks``."""
        reg = torch.addmv(self.offset[:1], self.weights[:1], flat_masks).squeeze(0)
        return SparsityResult(reg=reg, per_layer=tuple(self.layers.evaluate(flat_masks).unbind()))


def _guarded_ratio_of(value: Tensor, denominator: Tensor) -> Tensor:
    """``value / denominator``, or 0 where ``denominator <= SPARSITY_MIN_DENOMINATOR``.

    A division (not a product with ``1 / denominator``): these are exactly the values autograd
    gives :func:`original_sparsity`'s and :func:`cross_sparsity`'s gradients, so training with
    the affine form is bitwise the training with those functions.
    """
    ok = denominator > SPARSITY_MIN_DENOMINATOR
    safe = torch.where(ok, denominator, torch.ones_like(denominator))
    return torch.where(ok, value / safe, torch.zeros_like(value))


def _linear_rows(
    cumulative: Sequence[Tensor], *, reuse: bool, factor: float
) -> tuple[Tensor, Tensor, LayerSparsity]:
    if len(cumulative) == 0:
        raise ValueError("cumulative must hold at least one layer, got an empty sequence")
    cum = [c.detach().reshape(-1) for c in cumulative]
    flat = torch.cat(cum)
    weights = flat.new_zeros(1 + len(cum), flat.numel())
    offset = flat.new_zeros(1 + len(cum))
    rows = [(0, flat, flat.new_tensor(factor))] + [
        (row, c, flat.new_tensor(1.0)) for row, c in enumerate(cum, start=1)
    ]
    start = 0
    for row, c, scale in rows:
        if reuse:
            scale = scale / 2
        part = weights[row] if row == 0 else weights[row, start : start + c.numel()]
        part += (1 - c) * _guarded_ratio_of(scale, (1 - c).sum())
        if reuse:
            part -= c * _guarded_ratio_of(scale, c.sum())
            offset[row] = torch.where(c.sum() > SPARSITY_MIN_DENOMINATOR, scale, 0.0)
        start += 0 if row == 0 else c.numel()
    return weights, offset, _layer_sparsity(cum, reuse=reuse)


def _layer_sparsity(cum: list[Tensor], *, reuse: bool) -> LayerSparsity:
    def guard(sums: Tensor) -> tuple[Tensor, Tensor]:
        ok = sums > SPARSITY_MIN_DENOMINATOR
        return torch.where(ok, sums, torch.ones_like(sums)), ok.to(sums.dtype)

    available, available_ok = guard(torch.stack([(1 - c).sum() for c in cum]))
    if bool(available_ok.all()):  # once per task: a step then skips the product with 1
        available_ok = None
    used_sum, used_ok = guard(torch.stack([c.sum() for c in cum]))
    flat = torch.cat(cum)
    return LayerSparsity(
        free=1 - flat, used=flat, sizes=tuple(c.numel() for c in cum), available=available,
        available_ok=available_ok, used_sum=used_sum, used_ok=used_ok, reuse=reuse,
    )  # fmt: skip


def original_sparsity_linear(
    cumulative: Sequence[Tensor], *, factor: float = 1.0
) -> SparsityLinearForm:
    """:func:`original_sparsity` for the cumulative masks ``cumulative`` as an affine map.

    ``reg = sum_l sum(m_l (1 - M_l)) / A`` and ``R_l = sum(m_l (1 - M_l)) / A_l``, each 0 under
    the guard; so row 0 of ``weights`` is ``(1 - M) / A`` and row ``l`` is ``(1 - M_l) / A_l``
    on layer ``l``'s units (0 elsewhere); ``offset`` is 0. ``factor`` multiplies row 0 (the
    regulariser's weight in the loss), with the rounding of ``factor * reg``'s gradient.

    Raises:
        ValueError: if ``cumulative`` is empty.
    """
    return SparsityLinearForm(*_linear_rows(cumulative, reuse=False, factor=factor))


def cross_sparsity_linear(
    cumulative: Sequence[Tensor], *, factor: float = 1.0
) -> SparsityLinearForm:
    """:func:`cross_sparsity` for the cumulative masks ``cumulative`` as an affine map.

    ``(O / A + 1 - Q / P) / 2 = sum m ((1 - M) / A - M / P) / 2 + 1 / 2`` where each guarded
    ratio is 0 (and the reuse term ``1 - Q / P`` wholly 0, offset included) when its
    denominator is ``SPARSITY_MIN_DENOMINATOR`` units or fewer; per layer likewise.
    ``factor`` multiplies row 0, as in :func:`original_sparsity_linear`.

    Raises:
        ValueError: if ``cumulative`` is empty.
    """
    return SparsityLinearForm(*_linear_rows(cumulative, reuse=True, factor=factor))
