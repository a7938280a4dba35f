"""Which units each tensor carries, and along which dims, followed through the traced graph.

Every tensor of the graph gets a layout: :class:`Units` (the mask key of its units, ``None``
for the raw input, constants and the outputs of excluded modules: always on; the dims the units
span; how many features each unit spans after a flatten, ``repeat``, channel-major as
``torch.flatten`` orders them), :class:`Segments` (several layers' units side by side, as in a
fused projection), :class:`Concat` (a concatenation along the unit dim: several layers' units,
or a layer's and the input's, read together by the next layer), :class:`Pieces` (a tuple from
``unbind``/``chunk``) or :class:`Unfollowable`, naming the op that hid the units. Elementwise
ops, dropout, pooling, padding and norms keep the layout; reshapes, permutes, indexing,
reductions and matmuls move it (:mod:`hatcl.wrap.follow`,
:mod:`hatcl.wrap.tokens`). wrap refuses a weighted layer (or the network's output) that reads an
unfollowable tensor.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from hatcl.backbones.base import ActivationTap
from hatcl.wrap import follow, tokens
from hatcl.wrap.graph import (
    ACTIVATION_FUNCTIONS,
    ACTIVATION_METHODS,
    ACTIVATION_MODULES,
    BATCH_NORM_TYPES,
    describe,
    is_add,
    module_of,
    shape_of,
)
from hatcl.wrap.rewrite import emit_activation
from hatcl.wrap.tokens import ALWAYS_ON, Concat, Pieces, Segments, Units

__all__ = ["ALWAYS_ON", "Concat", "Pieces", "Segments", "Unfollowable", "Units", "propagate"]
from hatcl.wrap.unmasked import inner_module


@dataclass(frozen=True)
class Unfollowable:
    """wrap cannot tell which units a tensor carries; ``reason`` says which op hid them."""

    reason: str


Layout = Units | Segments | Concat | Pieces | Unfollowable

_KEEP_MODULES = (
    *ACTIVATION_MODULES,
    *BATCH_NORM_TYPES,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Identity,
    nn.ZeroPad2d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.Upsample,
    ActivationTap,
)
NORM_TYPES = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
"""Normalisations keeping each unit in place (their parameters are per_task or frozen)."""
_KEEP_FUNCTIONS = ACTIVATION_FUNCTIONS | {
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    F.pad,
    F.interpolate,
    operator.mul,
    operator.truediv,
    operator.sub,
    operator.neg,
    torch.mul,
    torch.sub,
    operator.add,
    operator.iadd,
    torch.add,
    emit_activation,
    F.layer_norm,
    F.group_norm,
}
_KEEP_METHODS = ACTIVATION_METHODS | {
    "contiguous",
    "clone",
    "float",
    "double",
    "half",
    "to",
    "mul",
    "div",
    "sub",
    "add",
    "add_",
}
_RESHAPE_FUNCTIONS = frozenset({torch.flatten, torch.reshape})
_RESHAPE_METHODS = frozenset({"flatten", "view", "reshape", "unflatten", "squeeze", "unsqueeze"})
_RESHAPE_FUNCTIONS = _RESHAPE_FUNCTIONS | {torch.squeeze, torch.unsqueeze, torch.unflatten}
_CAT_FUNCTIONS = frozenset({torch.cat, torch.concat})


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The graph nodes among ``node``'s arguments (lists of tensors flattened)."""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), found.append)
    return found


def propagate(
    graph_module: fx.GraphModule, *, fixed: dict[fx.Node, Layout]
) -> dict[fx.Node, Layout]:
    """The layout of every tensor node, in graph order.

    Args:
        fixed: layouts decided by wrap itself (the input, mask and tap nodes, excluded modules).
    """
    layouts: dict[fx.Node, Layout] = {}
    for node in graph_module.graph.nodes:
        if node in fixed:
            layouts[node] = fixed[node]
        elif node.op in ("placeholder", "get_attr") or "tensor_meta" not in node.meta:
            layouts[node] = ALWAYS_ON  # no tensor (a size, a shape entry): carries no units
        elif node.op != "output":
            layouts[node] = _layout(graph_module, node, layouts)
    return layouts


def _layout(graph_module: fx.GraphModule, node: fx.Node, layouts: dict) -> Layout:
    inputs = [layouts[a] for a in tensor_inputs(node) if a in layouts]
    if all(layout == ALWAYS_ON for layout in inputs):
        return ALWAYS_ON
    bad = next((layout for layout in inputs if isinstance(layout, Unfollowable)), None)
    if bad is not None:
        return bad
    rule = follow.rule_for(node)
    if rule is not None:
        layout = rule(node, layouts)
    elif _is_reshape(graph_module, node):
        return _reshaped(node, layouts[node.args[0]])
    elif node.op == "call_function" and node.target in _CAT_FUNCTIONS:
        return _concatenated(node, layouts)
    elif _keeps_units(graph_module, node):
        return _same_units(node, layouts)
    else:
        layout = None
    if layout is None:
        return Unfollowable(
            f"{describe(node)} (node {node.name!r}): wrap cannot tell which units its output "
            "carries"
        )
    return layout


def _keeps_units(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    module = module_of(graph_module, node)
    if module is not None:
        inner = inner_module(module)  # a per-task or frozen norm: its output is masked again
        return isinstance(module, _KEEP_MODULES) or (
            inner is not module and isinstance(inner, NORM_TYPES + BATCH_NORM_TYPES)
        )
    if node.op == "call_function":
        return node.target in _KEEP_FUNCTIONS or is_add(node)
    if node.op == "call_method":
        return node.target in _KEEP_METHODS
    return False


def _same_units(node: fx.Node, layouts: dict) -> Layout:
    """Elementwise ops: the units of the inputs carrying some (broadcast to the output rank)."""
    rank = len(shape_of(node) or ())
    inputs = []
    for argument in tensor_inputs(node):
        layout = layouts.get(argument, ALWAYS_ON)
        shift = rank - len(shape_of(argument) or ())
        if isinstance(layout, Units) and layout.key is not None and shift:
            layout = Units(layout.key, layout.repeat, tuple(d + shift for d in layout.dims))
        inputs.append(layout)
    distinct = {layout for layout in inputs if layout != ALWAYS_ON or len(inputs) == 1}
    if len(distinct) == 1:
        return distinct.pop()
    keys = sorted(str(getattr(layout, "key", layout)) for layout in distinct)
    return Unfollowable(
        f"{describe(node)} (node {node.name!r}) combines tensors of different units {keys}; "
        "a sum of two layers' outputs must come before their nonlinearity (right after their "
        "batch norms) so that both share one mask: write relu(x + f(x)), not x + relu(f(x))"
    )


def _is_reshape(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    if isinstance(module_of(graph_module, node), nn.Flatten):
        return True
    if node.op == "call_function":
        return node.target in _RESHAPE_FUNCTIONS
    return node.op == "call_method" and node.target in _RESHAPE_METHODS


def _reshaped(node: fx.Node, layout: Layout) -> Layout:
    source, out = shape_of(node.args[0]), shape_of(node)
    if source and out and isinstance(layout, Units | Segments | Concat):
        reshaped = tokens.reshape(layout, source, out)
        if reshaped is None and isinstance(layout, Segments) and layout.select is None:
            concat = tokens.as_concat(layout, source[layout.dims[0]])
            reshaped = tokens.reshape(concat, source, out)  # e.g. a flatten after a cat
        if reshaped is not None:
            return reshaped
    return Unfollowable(
        f"{describe(node)} (node {node.name!r}) reshapes {source} to {out}, mixing units with "
        "other dims; wrap follows a flatten to (batch, channels * positions) (torch.flatten(x, "
        "1), x.view(x.size(0), -1)) and reshapes that split or merge the unit dims alone"
    )


def _concatenated(node: fx.Node, layouts: dict) -> Layout:
    """``torch.cat``: along other dims the units stay; along the unit dim the parts line up.

    Equal-width parts of keyed layers give :class:`Segments` (a fused projection split again
    later); any other concatenation of units (several layers' outputs, a layer's output and
    always-on features such as the input: DenseNet) gives a :class:`Concat`.
    """
    tensors = tensor_inputs(node)
    inputs = [layouts.get(a, ALWAYS_ON) for a in tensors]
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    rank = len(shape_of(node) or (0, 0))
    dim %= rank
    if not any(dim in getattr(layout, "dims", ()) for layout in inputs if layout != ALWAYS_ON):
        return _same_units(node, dict(zip(tensors, inputs)))
    parts = []
    for tensor, layout in zip(tensors, inputs):
        found = _parts(layout, dim, (shape_of(tensor) or ())[dim : dim + 1])
        if found is None:
            return Unfollowable(
                f"{describe(node)} (node {node.name!r}) concatenates along dim {dim} a tensor "
                f"(node {tensor.name!r}) whose units lie along dims {getattr(layout, 'dims', '?')}"
                "; concatenate tensors along the dim their units share (channels, or the last "
                "dim of token tensors), or along another dim"
            )
        parts.extend(found)
    widths = {units for _, units, _ in parts}
    plain = all(isinstance(layout, Units) for layout in inputs)
    if plain and len(widths) == 1 and all(k is not None and r == 1 for k, _, r in parts):
        return Segments(keys=tuple(key for key, _, _ in parts), dims=(dim,))
    return Concat(parts=tuple(parts), dims=(dim,))


def _parts(layout: Layout, dim: int, size: tuple[int, ...]) -> list | None:
    """The (key, units, repeat) parts ``layout`` adds to a concatenation along ``dim``."""
    if not size:
        return None
    if isinstance(layout, Units) and layout.key is None:
        return [(None, size[0], 1)]
    if isinstance(layout, Units) and layout.dims == (dim,):
        return [(layout.key, size[0] // layout.repeat, layout.repeat)]
    if isinstance(layout, Concat) and layout.dims == (dim,):
        return list(layout.parts)
    if isinstance(layout, Segments) and layout.select is None and layout.dims == (dim,):
        return list(tokens.as_concat(layout, size[0]).parts)
    return None
