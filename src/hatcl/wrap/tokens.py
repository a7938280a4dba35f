"""How unit dims move through reshapes, permutes, indexing, reductions and matmuls.

Pure shape arithmetic on layouts (no graph): each function takes a layout and the shapes around
an op and returns the output's layout, or ``None`` when the op hides which unit each feature
belongs to. A :class:`Units` layout lists the dims its units span, major first (a Linear on
``(batch, tokens, features)`` has ``dims=(2,)``; heads split by a reshape ``(1, 3)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Units:
    """The units of mask ``key`` (``None``: always on) along ``dims``, ``repeat`` features each.

    ``repeat`` > 1 only after a flatten merged positions into the unit dim (channel-major).
    """

    key: str | None
    repeat: int = 1
    dims: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class Segments:
    """Several layers' units side by side: concatenated along ``dims[0]`` (``select`` is
    ``None``), or one layer per index of dim ``select`` with its units along ``dims``."""

    keys: tuple[str, ...]
    dims: tuple[int, ...]
    select: int | None = None


@dataclass(frozen=True)
class Concat:
    """Tensors concatenated along their unit dim ``dims[0]`` (DenseNet-style): ``parts`` holds,
    in order, each part's mask key (``None``: always-on features such as the raw input), its
    unit count and the features each unit spans (``repeat``, after a flatten)."""

    parts: tuple[tuple[str | None, int, int], ...]
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Pieces:
    """A tuple of tensors (``unbind``, ``chunk``, ``split``): one layout per piece."""

    layouts: tuple


ALWAYS_ON = Units(key=None)


def blocks(source: tuple[int, ...], out: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Pair the dims of a reshape into minimal blocks of equal size; ``[]`` if none exist."""
    found, i, j = [], 0, 0
    while i < len(source) or j < len(out):
        ins, outs, left, right = [], [], 1, 1
        if i < len(source):
            ins.append(i)
            left, i = left * source[i], i + 1
        if j < len(out):
            outs.append(j)
            right, j = right * out[j], j + 1
        while left != right:
            if left < right and i < len(source):
                ins.append(i)
                left, i = left * source[i], i + 1
            elif right < left and j < len(out):
                outs.append(j)
                right, j = right * out[j], j + 1
            else:
                return []
        found.append((ins, outs))
    return found


def reshape(layout, source: tuple[int, ...], out: tuple[int, ...]):
    """The layout after reshaping ``source`` to ``out`` (``None``: not followable)."""
    pairs = blocks(source, out)
    if not pairs:
        return None
    if isinstance(layout, Concat):
        return _reshape_concat(layout, source, out)
    units = set(layout.dims) if isinstance(layout, Units | Segments) else set()
    touched = [(ins, outs) for ins, outs in pairs if units & set(ins)]
    if isinstance(layout, Segments):
        return _reshape_segments(layout, touched, source, out)
    dims = list(layout.dims)
    if dims != list(range(dims[0], dims[0] + len(dims))):
        return None  # units not contiguous: a reshape would interleave them with other dims
    if all(set(ins) <= units | _ones(ins, source) for ins, _ in touched):
        new = tuple(o for _, outs in touched for o in outs if out[o] != 1 or len(outs) == 1)
        if layout.repeat == 1 or (len(new) == 1 and len(touched) == 1):
            return replace(layout, dims=new)
        return None
    if len(touched) == 1 and len(touched[0][1]) == 1:
        ins = touched[0][0]
        if ins[: len(dims)] == dims:  # channels then positions: a flatten, channel-major
            spread = math.prod(source[d] for d in ins[len(dims) :])
            return replace(layout, dims=(touched[0][1][0],), repeat=layout.repeat * spread)
    return None


def _reshape_concat(layout: Concat, source, out):
    """A concatenation moves as one unit dim; a flatten spreads every part's units alike."""
    moved = reshape(Units(key="", dims=layout.dims), source, out)
    if moved is None or len(moved.dims) != 1:
        return None  # the unit dim split: the parts would interleave with the new dims
    parts = tuple((key, units, repeat * moved.repeat) for key, units, repeat in layout.parts)
    return Concat(parts=parts, dims=moved.dims)


def as_concat(layout: Segments, size: int) -> Concat:
    """Equal-width segments along ``size`` features as a :class:`Concat` of their units."""
    width = size // len(layout.keys)
    return Concat(parts=tuple((key, width, 1) for key in layout.keys), dims=layout.dims)


def _ones(ins: list[int], source: tuple[int, ...]) -> set[int]:
    return {d for d in ins if source[d] == 1}


def _reshape_segments(layout: Segments, touched, source, out):
    if layout.select is not None or len(touched) != 1 or touched[0][0] != list(layout.dims):
        return None
    outs = touched[0][1]
    if len(outs) == 1:
        return replace(layout, dims=(outs[0],))
    if out[outs[0]] == len(layout.keys):  # (..., n * units) -> (..., n, units...)
        return Segments(keys=layout.keys, dims=tuple(outs[1:]), select=outs[0])
    return None


def permute(layout, order: list[int]):
    """The layout after ``x.permute(order)``."""
    where = {old: new for new, old in enumerate(order)}
    if isinstance(layout, Units):
        if layout.repeat != 1 and layout.dims != (where[layout.dims[0]],):
            return None
        return replace(layout, dims=tuple(where[d] for d in layout.dims))
    if isinstance(layout, Concat):
        return replace(layout, dims=(where[layout.dims[0]],))
    select = None if layout.select is None else where[layout.select]
    return replace(layout, dims=tuple(where[d] for d in layout.dims), select=select)


def drop_dims(layout, dropped: set[int], rank: int):
    """The layout after removing ``dropped`` dims (reductions, integer indices)."""
    if isinstance(layout, Segments):
        if layout.select in dropped or dropped & set(layout.dims):
            return None
        shift = _shifter(dropped)
        select = None if layout.select is None else shift(layout.select)
        return replace(layout, dims=tuple(map(shift, layout.dims)), select=select)
    if dropped & set(layout.dims):
        return None
    return replace(layout, dims=tuple(map(_shifter(dropped), layout.dims)))


def _shifter(dropped: set[int]):
    return lambda d: d - sum(1 for r in dropped if r < d)


def select(layout: Segments, index: int):
    """The units of segment ``index`` once dim ``layout.select`` is indexed away."""
    keys = layout.keys
    dims = tuple(d - (d > layout.select) for d in layout.dims)
    return Units(key=keys[index], dims=dims)


def matmul(left, right, ranks: tuple[int, int, int]):
    """``left @ right``: units contracted away carry on as always on (attention scores);
    the units of one operand pass if the other carries none."""
    left_rank, right_rank, out_rank = ranks
    if left == ALWAYS_ON and isinstance(right, Units):
        if right_rank - 2 in right.dims or right_rank < 2:
            return ALWAYS_ON
        return replace(right, dims=tuple(d + out_rank - right_rank for d in right.dims))
    if right == ALWAYS_ON and isinstance(left, Units):
        if left_rank - 1 in left.dims:
            return ALWAYS_ON
        return replace(left, dims=tuple(d + out_rank - left_rank for d in left.dims))
    if isinstance(left, Units) and isinstance(right, Units):
        if left_rank - 1 in left.dims and right_rank - 2 in right.dims:
            return ALWAYS_ON  # q @ k^T: the scores carry no units of their own
    return None
