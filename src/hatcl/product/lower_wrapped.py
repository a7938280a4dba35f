"""Lowering a :func:`hatcl.wrap` network to task T's compact ``torch.fx`` graph.

The wrapped graph takes ``(x, task_id, emit, *masks)``. The lowered copy takes ``x`` only: each
weighted layer keeps its kept units' rows and its inputs' kept columns, each per-task batch norm
becomes task T's (pruned), mask applications, activation transforms and taps are removed, and a
residual sum of a unit group reads every addend laid out as the group's kept units (a
:class:`~hatcl.product.prune.ChannelGather` where an identity carries other units).
"""

from __future__ import annotations

import copy
import math
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from hatcl.backbones.base import ActivationTap, Add, ApplyMask
from hatcl.product.lower import Lowered
from hatcl.product.prune import (
    ChannelGather,
    expand,
    gather_index,
    kept_units,
    slice_layer,
    slice_norm,
    task_norm,
)
from hatcl.wrap.graph import (
    BATCH_NORM_TYPES,
    add_module,
    is_activation,
    module_of,
    shape_of,
)
from hatcl.wrap.rewrite import PerTaskBatchNorm, emit_activation
from hatcl.wrap.units import tensor_inputs

PREFIX = "network."


Layout = tuple[str, int] | None
"""What dim 1 of a lowered tensor carries: the kept units of a key, ``repeat`` features each
(after a flatten), or ``None``: every feature of the original network (full width)."""


class _Lowering:
    """State of one lowering pass: the graph copy, kept units and each tensor's layout."""

    def __init__(self, backbone: nn.Module, task_id: int, prune: bool) -> None:
        self.backbone = backbone
        self.task_id = task_id
        self.network: fx.GraphModule = copy.deepcopy(backbone.network)
        self.kept = kept_units(backbone, task_id, prune=prune)
        self.units = {key: int(n) for key, n in _unit_counts(backbone).items()}
        self.layers = {layer.name.removeprefix(PREFIX): layer for layer in backbone.weighted_layers}
        self.layout: dict[fx.Node, Layout] = {}
        self.sum_key: dict[fx.Node, str] = {}
        self.realigned: dict[tuple[fx.Node, Layout], fx.Node] = {}

    def run(self) -> Lowered:
        graph = self.network.graph
        placeholders = [node for node in graph.nodes if node.op == "placeholder"]
        mask_keys = dict(zip(placeholders[3:], self.backbone.keys))
        self._mark_sums(mask_keys)
        output = None
        for node in list(graph.nodes):
            if node.op == "output":
                output = node
            elif node.op != "placeholder":
                self._lower_node(node, mask_keys)
        features = output.args[0][0]
        output.args = (features,)
        for node in placeholders[1:]:
            graph.erase_node(node)
        self.network.delete_all_unused_submodules()
        graph.lint()
        self.network.recompile()
        kept = self._features(self.layout.get(features))
        return Lowered(features=nn.Sequential(self.network, nn.Flatten(1)), kept_features=kept)

    def _features(self, layout: Layout) -> torch.Tensor | None:
        """The original features a tensor of ``layout`` keeps (``None``: all of them)."""
        return None if layout is None else expand(self.kept[layout[0]], layout[1])

    def _width(self, layout: Layout, other: Layout) -> int:
        key, repeat = layout if layout is not None else other
        return self.units[key] * repeat

    def _mark_sums(self, mask_keys: dict) -> None:
        """Each residual sum (an ``Add`` module before a mask) belongs to the mask's units."""
        for node in self.network.graph.nodes:
            if isinstance(module_of(self.network, node), ApplyMask):
                if node.kwargs["mask"] not in mask_keys:
                    raise ValueError(
                        f"export cannot lower {node.name!r}: the masks of a concatenation "
                        "applied again after a per-task norm on it (DenseNet-BC) is not "
                        "supported by export yet; predict with the run's model (hatcl.load)"
                    )
                key = mask_keys[node.kwargs["mask"]]
                self._check_zero_at_zero(node)
                pending = [node.args[0]]
                while pending:
                    source = pending.pop()
                    if isinstance(module_of(self.network, source), Add):
                        self.sum_key[source] = key
                        pending.extend(source.args)

    def _check_zero_at_zero(self, mask_node: fx.Node) -> None:
        users = list(mask_node.users)
        if len(users) == 1 and is_activation(self.network, users[0]):
            if not _zero_at_zero(self.network, users[0]):
                raise ValueError(
                    f"export removes masked-off units, which is exact when their nonlinearity "
                    f"maps 0 to 0; {users[0].name!r} after mask {mask_node.name!r} does not"
                )

    def _lower_node(self, node: fx.Node, mask_keys: dict) -> None:
        module = module_of(self.network, node)
        inputs = tensor_inputs(node)
        first = self.layout.get(inputs[0]) if inputs else None
        if node.op == "call_module" and str(node.target) in self.layers:
            self._lower_layer(node, module, first)
        elif isinstance(module, (PerTaskBatchNorm, *BATCH_NORM_TYPES)):
            self._replace(node, slice_norm(task_norm(module, self.task_id), self._features(first)))
            node.args = node.args[:1]
            self.layout[node] = first
        elif isinstance(module, (ApplyMask, ActivationTap)):
            source = node.args[0]
            if isinstance(module, ApplyMask):
                key = mask_keys[node.kwargs["mask"]]
                source = self._realign(source, (key, 1), before=node)
            self._bypass(node, source)
        elif node.op == "call_function" and node.target is emit_activation:
            self._bypass(node, node.args[2])
        elif isinstance(module, Add):
            key = self.sum_key.get(node)
            target = (key, 1) if key is not None else first
            args = [self._realign(arg, target, before=node) for arg in node.args]
            with self.network.graph.inserting_after(node):
                plain = self.network.graph.call_function(operator.add, tuple(args))
            self._bypass(node, plain)
            self.layout[plain] = target
        else:
            self._lower_other(node, inputs, first)

    def _lower_layer(self, node: fx.Node, module: nn.Module, first: Layout) -> None:
        """Rows of the kept units; columns of the kept inputs (all, for a full-width input)."""
        layer = self.layers[str(node.target)]
        rows = self.kept[layer.mask_key]
        self._replace(node, slice_layer(module, rows=rows, columns=self._features(first)))
        self.layout[node] = (layer.mask_key, 1)

    def _lower_other(self, node: fx.Node, inputs: list[fx.Node], first: Layout) -> None:
        layouts = {self.layout.get(a) for a in inputs}
        if layouts == {None}:
            self.layout[node] = None
        elif len(layouts) == 1 and _keeps_zero_units(self.network, node):
            self.layout[node] = first
        elif len(layouts) == 1 and first[1] == 1 and (repeat := _flatten_repeat(node, first)):
            self.layout[node] = (first[0], repeat)
        else:  # an op that may mix units: give it full-width tensors (pruned units as 0)
            node.args, node.kwargs = fx.node.map_arg(
                (node.args, node.kwargs), lambda arg: self._realign(arg, None, before=node)
            )
            self.layout[node] = None

    def _realign(self, node: fx.Node, target: Layout, *, before: fx.Node) -> fx.Node:
        source = self.layout.get(node)
        if source == target or (node.op == "call_method" and node.target == "size"):
            return node
        if (node, target) not in self.realigned:  # one gather per tensor and layout
            index = gather_index(
                self._features(source),
                self._features(target),
                units=self._width(source, target),
            )
            self.realigned[node, target] = self._gather(node, index, target, before=before)
        return self.realigned[node, target]

    def _gather(self, node: fx.Node, index, layout: Layout, *, before: fx.Node) -> fx.Node:
        if index is None:
            return node
        name = add_module(self.network, f"{node.name}_gather", ChannelGather(index))
        with self.network.graph.inserting_before(before):
            gathered = self.network.graph.call_module(name, (node,))
        self.layout[gathered] = layout
        return gathered

    def _replace(self, node: fx.Node, module: nn.Module) -> None:
        name = add_module(self.network, f"{node.target}_task", module)
        node.target = name

    def _bypass(self, node: fx.Node, source: fx.Node) -> None:
        node.replace_all_uses_with(source)
        self.network.graph.erase_node(node)


_SAFE_MODULES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
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
)
_SAFE_FUNCTIONS = frozenset(
    {
        F.dropout,
        F.dropout1d,
        F.dropout2d,
        F.max_pool1d,
        F.max_pool2d,
        F.avg_pool1d,
        F.avg_pool2d,
        F.adaptive_avg_pool1d,
        F.adaptive_avg_pool2d,
        F.adaptive_max_pool2d,
        operator.add,
        operator.iadd,
        operator.mul,
        torch.add,
        torch.mul,
    }
)
_SAFE_METHODS = frozenset({"contiguous", "clone", "add", "add_", "mul"})
_FLATTEN_FUNCTIONS = frozenset({torch.flatten, torch.reshape})
_FLATTEN_METHODS = frozenset({"flatten", "view", "reshape"})


def _keeps_zero_units(network: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` treats every unit (dim 1 entry) on its own and keeps a 0 unit at 0, so
    pruned units may stay pruned (a nonlinearity with f(0) = 0, pooling, dropout, a sum or
    product of tensors of the same units). Every other op is given full-width tensors, which
    keeps the result exact without knowing the op."""
    module = module_of(network, node)
    if is_activation(network, node):
        return _zero_at_zero(network, node)
    if module is not None:
        return isinstance(module, _SAFE_MODULES)
    if node.op == "call_function":
        return node.target in _SAFE_FUNCTIONS
    return node.op == "call_method" and node.target in _SAFE_METHODS


def _zero_at_zero(network: fx.GraphModule, node: fx.Node) -> bool:
    zero = torch.zeros(1)
    module = module_of(network, node)
    if module is not None:
        value = module(zero)
    elif node.op == "call_function":
        value = node.target(zero)
    else:
        value = getattr(zero, node.target)()
    return bool(value.abs().max() == 0)


def _flatten_repeat(node: fx.Node, layout: Layout) -> int | None:
    """Features per unit when ``node`` flattens ``(batch, units, *positions)`` channel-major to
    ``(batch, units * positions)`` (shapes recorded when the network was wrapped), else None."""
    flattens = (node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS) or (
        node.op == "call_method" and node.target in _FLATTEN_METHODS
    )
    source = shape_of(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
    out = shape_of(node)
    if not flattens or source is None or out is None or len(source) < 3 or len(out) != 2:
        return None
    positions = math.prod(source[2:])
    if out[0] != source[0] or out[1] != source[1] * positions:
        return None
    return positions


def _unit_counts(backbone: nn.Module) -> dict[str, int]:
    if backbone.masker is not None:
        return backbone.masker.unit_counts
    return backbone.unit_counts()


def lower_wrapped(backbone: nn.Module, *, task_id: int, prune: bool = True) -> Lowered:
    """Task ``task_id``'s compact graph of a wrapped network (see the module docstring).

    Raises:
        ValueError: a masked unit's nonlinearity does not map 0 to 0 (its removal would not be
            exact), or a grouped convolution.
    """
    return _Lowering(backbone, task_id, prune).run()
