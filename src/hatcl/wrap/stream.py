"""A residual stream written by several layers shares one mask.

``x = x + proj(...)`` where ``x`` is a masked output with no nonlinearity after its mask (the
residual stream of a transformer, a linear skip path): the layers writing the sum join the
stream's unit group instead of starting a new one. Every write is masked with the stream's
mask, so units a task switched off stay zero along the whole stream, and the stream keeps the
capacity of one mask instead of the product of one mask per block. h_l of the stream is tapped
after its last write. Residual sums after a nonlinearity (``relu(x + conv(x))`` in a ResNet)
keep one mask per addition.
"""

from __future__ import annotations

from torch import fx

from hatcl.wrap.graph import is_activation
from hatcl.wrap.rewrite import UnitGroup, units_first
from hatcl.wrap.tokens import Units
from hatcl.wrap.units import tensor_inputs


def stream_merges(
    network: fx.GraphModule, groups: list[UnitGroup], applied: list, taps: list, layouts, units
) -> dict[str, str]:
    """Map each group writing a linear residual stream to the stream's (first) group key."""
    linear = {g.key for g, mask, tap in zip(groups, applied, taps) if _hidden(tap) is mask}
    masks = set(applied)
    root: dict[str, str] = {}
    for group in groups:
        if not group.adds:
            continue
        for operand in group.end.args:
            layout = layouts.get(operand)
            if not isinstance(layout, Units) or layout.key in (None, group.key):
                continue
            stream = root.get(layout.key, layout.key)
            if stream not in linear or units[stream] != units[group.key]:
                continue
            if _linear_since_mask(network, operand, masks, layouts):
                root[group.key] = stream
                break
    return root


def _linear_since_mask(network: fx.GraphModule, node: fx.Node, masks: set, layouts) -> bool:
    """Whether ``node`` follows a mask through its units' path with no nonlinearity."""
    for _ in range(1000):
        if node in masks:
            return True
        if is_activation(network, node):
            return False
        carrying = [
            a for a in tensor_inputs(node) if getattr(layouts.get(a), "key", None) is not None
        ]
        if len(carrying) != 1:
            return False
        node = carrying[0]
    return False


def _hidden(tap: fx.Node) -> fx.Node:
    """The node whose value a tap shows (before the transform and any move of the units)."""
    hidden = tap.args[0].args[2]
    return hidden.args[0] if hidden.target is units_first else hidden


def merge(graph: fx.Graph, root: dict[str, str], mask_inputs: dict, taps: dict) -> None:
    """Feed each merged group's masks from its stream's mask input; its tap replaces the
    stream's (the last write), and its own placeholder goes."""
    for key, stream in root.items():
        mask_inputs[key].replace_all_uses_with(mask_inputs[stream])
        graph.erase_node(mask_inputs.pop(key))
        taps[stream] = taps.pop(key)
