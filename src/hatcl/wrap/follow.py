"""Node-level rules following units through indexing, permutes, matmuls, attention, splits
and reductions (the shape arithmetic is in :mod:`hatcl.wrap.tokens`)."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from hatcl.wrap import tokens
from hatcl.wrap.graph import shape_of
from hatcl.wrap.rewrite import units_first, units_last
from hatcl.wrap.tokens import ALWAYS_ON, Concat, Pieces, Segments, Units

_PERMUTES = frozenset({"permute", "transpose", torch.permute, torch.transpose, "movedim"})
_MATMULS = frozenset({operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm"})
_SPLITS = frozenset({"unbind", "chunk", "split", torch.unbind, torch.chunk, torch.split})
_REDUCTIONS = frozenset(
    {torch.mean, torch.sum, torch.amax, torch.amin, "mean", "sum", "amax", "amin"}
)


def rule_for(node: fx.Node):
    """The rule computing ``node``'s layout, or ``None`` when none of these ops applies."""
    if node.op not in ("call_function", "call_method"):
        return None
    target = node.target
    if node.op == "call_function" and target is operator.getitem:
        return lambda n, layouts: _indexed(n, layouts[n.args[0]])
    if target in (units_first, units_last):
        return lambda n, layouts: tokens.permute(layouts[n.args[0]], _moved(n))
    if target in _PERMUTES:
        return lambda n, layouts: tokens.permute(layouts[n.args[0]], _order(n))
    if target in _MATMULS:
        return _matmul
    if target is F.scaled_dot_product_attention:
        return _attention
    if target in _SPLITS:
        return lambda n, layouts: _split(n, layouts[n.args[0]])
    if target in _REDUCTIONS:
        return lambda n, layouts: _reduced(n, layouts[n.args[0]])
    return None


def _moved(node: fx.Node) -> list[int]:
    """The permutation of :func:`units_first` / :func:`units_last` on the node's input."""
    order = list(range(len(shape_of(node.args[0]))))
    if node.target is units_first:
        order.insert(1, order.pop())
    else:
        order.append(order.pop(1))
    return order


def _matmul(node: fx.Node, layouts: dict):
    left, right = (layouts.get(a, ALWAYS_ON) for a in node.args[:2])
    ranks = tuple(len(shape_of(a) or ()) for a in (node.args[0], node.args[1], node))
    return tokens.matmul(left, right, ranks)


def _order(node: fx.Node) -> list[int]:
    rank = len(shape_of(node.args[0]))
    args = [a for a in node.args[1:]] or list(node.kwargs.values())
    if node.target in ("permute", torch.permute):
        dims = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
        return [d % rank for d in dims]
    order = list(range(rank))
    if node.target == "movedim":
        source, destination = args[0] % rank, args[1] % rank
        order.insert(destination, order.pop(source))
        return order
    a, b = args[0] % rank, args[1] % rank
    order[a], order[b] = order[b], order[a]
    return order


def _indexed(node: fx.Node, layout):
    """``x[...]`` on a tensor (basic indexing), or picking one piece of an unbind/chunk."""
    index = node.args[1]
    if isinstance(layout, Pieces):
        return layout.layouts[index] if isinstance(index, int) else None
    source = shape_of(node.args[0])
    entries = list(index) if isinstance(index, tuple) else [index]
    if any(isinstance(e, fx.Node) for e in entries) or source is None:
        return None
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        fill = len(source) - sum(1 for e in entries if e is not None and e is not Ellipsis)
        entries[at : at + 1] = [slice(None)] * fill
    dropped, added, dim = set(), [], 0
    for entry in entries:
        if entry is None:
            added.append(dim + len(added) - len(dropped))
            continue
        if isinstance(entry, int):
            dropped.add(dim)
        elif entry != slice(None) and _unit_dim(layout, dim):
            return None  # a slice of the units
        dim += 1
    if isinstance(layout, Segments) and layout.select in dropped and len(dropped) == 1:
        picked = entries[layout.select] if layout.select < len(entries) else None
        result = tokens.select(layout, picked) if isinstance(picked, int) else None
    else:
        result = tokens.drop_dims(layout, dropped, len(source))
    if result is None or not added:
        return result
    return _inserted(result, added)


def _unit_dim(layout, dim: int) -> bool:
    selected = getattr(layout, "select", None)
    return dim in layout.dims or dim == selected


def _inserted(layout, added: list[int]):
    def shift(d):
        return d + sum(1 for a in added if a <= d)

    if isinstance(layout, Units):
        return Units(layout.key, layout.repeat, tuple(map(shift, layout.dims)))
    return None


def _attention(node: fx.Node, layouts: dict):
    query, key, value = (layouts.get(a, ALWAYS_ON) for a in node.args[:3])
    rank = len(shape_of(node.args[2]))
    if isinstance(value, Units) and rank - 2 not in value.dims:
        return value  # attention weights carry no units; v's units reach the output
    return ALWAYS_ON if value == ALWAYS_ON else None


def _split(node: fx.Node, layout):
    meta = node.meta.get("tensor_meta")
    count = len(meta) if isinstance(meta, list | tuple) else 0
    rank = len(shape_of(node.args[0]))
    if node.target in ("unbind", torch.unbind):
        dim = (node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)) % rank
        if isinstance(layout, Segments) and layout.select == dim:
            return Pieces(tuple(tokens.select(layout, i) for i in range(count)))
        single = tokens.drop_dims(layout, {dim}, rank)
        return None if single is None else Pieces((single,) * count)
    dim = (node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)) % rank
    if isinstance(layout, Segments) and layout.select is None and layout.dims == (dim,):
        if count == len(layout.keys):
            return Pieces(tuple(Units(key, dims=(dim,)) for key in layout.keys))
        return None
    if isinstance(layout, Units | Concat) and dim not in layout.dims:
        return Pieces((layout,) * count)
    return None


def _reduced(node: fx.Node, layout):
    source, out = shape_of(node.args[0]), shape_of(node)
    if not source or out is None:
        return None
    rank = len(source)
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None:
        return None
    dims = {d % rank for d in (dims if isinstance(dims, list | tuple) else [dims])}
    if len(out) == rank:  # keepdim
        return layout if not dims & set(getattr(layout, "dims", ())) else None
    return tokens.drop_dims(layout, dims, rank)
