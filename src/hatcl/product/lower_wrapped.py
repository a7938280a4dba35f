"""Lowering a :func:`hatcl.wrap` network to task T's compact ``torch.fx`` graph.

The wrapped graph takes ``(x, task_id, emit, *masks)``. The lowered copy takes ``x`` only: each
weighted layer keeps its kept units' rows and its inputs' kept columns, each per-task batch norm
becomes task T's (pruned), mask applications, activation transforms and taps are removed, and a
residual sum of a unit group reads every addend laid out as the group's kept units (a
:class:`~hatcl.product.prune.ChannelGather` where an identity carries other units).
"""

from __future__ import annotations

import copy
import operator

import torch
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
from hatcl.wrap.graph import BATCH_NORM_TYPES, WEIGHTED_TYPES, add_module, is_activation, module_of
from hatcl.wrap.rewrite import PerTaskBatchNorm, emit_activation
from hatcl.wrap.units import tensor_inputs

PREFIX = "network."


class _Lowering:
    """State of one lowering pass: the graph copy, kept units and each tensor's unit key."""

    def __init__(self, backbone: nn.Module, task_id: int, prune: bool) -> None:
        self.backbone = backbone
        self.task_id = task_id
        self.network: fx.GraphModule = copy.deepcopy(backbone.network)
        self.kept = kept_units(backbone, task_id, prune=prune)
        self.units = {key: int(n) for key, n in _unit_counts(backbone).items()}
        self.layers = {layer.name.removeprefix(PREFIX): layer for layer in backbone.weighted_layers}
        self.key_of: dict[fx.Node, str | None] = {}
        self.sum_key: dict[fx.Node, str] = {}

    def run(self) -> Lowered:
        graph = self.network.graph
        placeholders = [node for node in graph.nodes if node.op == "placeholder"]
        self.key_of[placeholders[0]] = None
        mask_keys = dict(zip(placeholders[3:], self.backbone.keys))
        self._mark_sums(mask_keys)
        output = None
        for node in list(graph.nodes):
            if node.op == "placeholder":
                continue
            if node.op == "output":
                output = node
                continue
            self._lower_node(node, mask_keys)
        features = output.args[0][0]
        output.args = (features,)
        for node in placeholders[1:]:
            graph.erase_node(node)
        self.network.delete_all_unused_submodules()
        graph.lint()
        self.network.recompile()
        key = self.key_of.get(features)
        kept = None
        if key is not None and self.kept[key] is not None:
            kept = expand(self.kept[key], self.backbone.output_dim // self.units[key])
        return Lowered(features=nn.Sequential(self.network, nn.Flatten(1)), kept_features=kept)

    def _mark_sums(self, mask_keys: dict) -> None:
        """Each residual sum (an ``Add`` module before a mask) belongs to the mask's units."""
        for node in self.network.graph.nodes:
            if isinstance(module_of(self.network, node), ApplyMask):
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
        if len(users) != 1 or not is_activation(self.network, users[0]):
            return
        user = users[0]
        zero = torch.zeros(1)
        module = module_of(self.network, user)
        if module is not None:
            value = module(zero)
        elif user.op == "call_function":
            value = user.target(zero)
        else:
            value = getattr(zero, user.target)()
        if bool(value.abs().max() > 0):
            raise ValueError(
                f"export removes masked-off units, which is exact when their nonlinearity maps 0 "
                f"to 0; {user.name!r} after mask {mask_node.name!r} maps 0 to {float(value[0])}"
            )

    def _lower_node(self, node: fx.Node, mask_keys: dict) -> None:
        module = module_of(self.network, node)
        inputs = tensor_inputs(node)
        first = self.key_of.get(inputs[0]) if inputs else None
        if node.op == "call_module" and str(node.target) in self.layers:
            layer = self.layers[str(node.target)]
            columns = expand(self.kept.get(layer.input_mask_key), layer.input_repeat)
            rows = self.kept[layer.mask_key]
            self._replace(node, slice_layer(module, rows=rows, columns=columns))
            self.key_of[node] = layer.mask_key
        elif isinstance(module, WEIGHTED_TYPES):  # excluded by wrap: reads every unit
            node.args = (self._realign(node.args[0], None, before=node), *node.args[1:])
            self.key_of[node] = None
        elif isinstance(module, PerTaskBatchNorm) or isinstance(module, BATCH_NORM_TYPES):
            norm = task_norm(module, self.task_id)
            self._replace(node, slice_norm(norm, self.kept.get(first) if first else None))
            node.args = node.args[:1]
            self.key_of[node] = first
        elif isinstance(module, (ApplyMask, ActivationTap)):
            source = node.args[0]
            if isinstance(module, ApplyMask):
                source = self._realign(source, mask_keys[node.kwargs["mask"]], before=node)
            self._bypass(node, source)
        elif node.op == "call_function" and node.target is emit_activation:
            self._bypass(node, node.args[2])
        elif isinstance(module, Add):
            key = self.sum_key.get(node, first)
            args = [self._realign(arg, key, before=node) for arg in node.args]
            with self.network.graph.inserting_after(node):
                plain = self.network.graph.call_function(operator.add, tuple(args))
            self._bypass(node, plain)
            self.key_of[plain] = key
        else:
            self.key_of[node] = next((self.key_of[a] for a in inputs if self.key_of.get(a)), None)

    def _realign(self, node: fx.Node, key: str | None, *, before: fx.Node) -> fx.Node:
        source = self.key_of.get(node)
        if source == key:
            return node
        units = self.units[key] if key is not None else self.units[source]
        index = gather_index(self.kept.get(source), self.kept.get(key), units=units)
        if index is None:
            return node
        name = add_module(self.network, f"{node.name}_to_{key}", ChannelGather(index))
        with self.network.graph.inserting_before(before):
            gathered = self.network.graph.call_module(name, (node,))
        self.key_of[gathered] = key
        return gathered

    def _replace(self, node: fx.Node, module: nn.Module) -> None:
        name = add_module(self.network, f"{node.target}_task", module)
        node.target = name

    def _bypass(self, node: fx.Node, source: fx.Node) -> None:
        node.replace_all_uses_with(source)
        self.key_of[source] = self.key_of.get(source)
        self.network.graph.erase_node(node)


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
