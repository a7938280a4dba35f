"""The weighted-layer descriptors of a wrapped network: which units each layer reads.

A layer reads the units of one mask key (``input_mask_key``, each spanning ``input_repeat``
features after a flatten), the always-on input (``None``), or a concatenation along its
input-feature dim of several parts (``input_segments``: DenseNet), in which case the per-weight
rules take each input column's mask from its own part.
"""

from __future__ import annotations

from dataclasses import replace

from torch import fx, nn

from hatcl.backbones.base import WeightedLayer
from hatcl.wrap.graph import shape_of
from hatcl.wrap.tokens import Concat, Segments, Units, as_concat
from hatcl.wrap.units import Unfollowable

NETWORK = "network"
"""The attribute holding the rewritten network; weighted-layer names start with it."""


def weighted_layers(network: fx.GraphModule, groups, layouts) -> list[WeightedLayer]:
    """One descriptor per weighted layer, in graph order; refuses what a layer cannot read."""
    layers = []
    key_of = {node: group.key for group in groups for node in group.layers}
    order = [node for node in network.graph.nodes if node in key_of]
    for node in order:
        layout = read_layout(network, node, layouts[node.args[0]])
        if isinstance(network.get_submodule(node.target), nn.Embedding):
            layer = WeightedLayer(
                name=f"{NETWORK}.{node.target}",
                mask_key=key_of[node],
                input_mask_key=None,
                unit_dim=1,
            )
        elif isinstance(layout, Concat):
            layer = WeightedLayer(
                name=f"{NETWORK}.{node.target}",
                mask_key=key_of[node],
                input_mask_key=None,
                input_segments=layout.parts,
            )
        else:
            layer = WeightedLayer(
                name=f"{NETWORK}.{node.target}",
                mask_key=key_of[node],
                input_mask_key=layout.key,
                input_repeat=layout.repeat,
            )
        layers.append(layer)
    check_input_sizes(network, layers, groups)
    return layers


def unit_count(module: nn.Module) -> int:
    """The number of output units of a masked layer (an embedding's: its embedding dim)."""
    return int(module.weight.shape[1 if isinstance(module, nn.Embedding) else 0])


def read_layout(network: fx.GraphModule, node: fx.Node, layout) -> Units | Concat:
    """The units a weighted layer reads, along its input-feature dim; refused otherwise."""
    if isinstance(layout, Unfollowable):
        raise ValueError(
            f"layer {node.target!r} reads a tensor wrap cannot follow: {layout.reason}"
        )
    if isinstance(network.get_submodule(node.target), nn.Embedding):
        if getattr(layout, "key", None) is not None or not isinstance(layout, Units):
            raise ValueError(
                f"embedding {node.target!r} reads indices computed from masked units; an "
                "embedding must read the token ids (the input or always-on tensors)"
            )
        return layout
    rank = len(shape_of(node.args[0]) or ())
    feature_dim = rank - 1 if isinstance(network.get_submodule(node.target), nn.Linear) else 1
    if isinstance(layout, Segments) and layout.select is None:
        layout = as_concat(layout, shape_of(node.args[0])[layout.dims[0]])
    if isinstance(layout, Concat) and layout.dims == (feature_dim,):
        return layout
    if not isinstance(layout, Units) or (layout.key is not None and layout.dims != (feature_dim,)):
        dims = getattr(layout, "dims", "?")
        raise ValueError(
            f"layer {node.target!r} reads units along dims {dims} of its input but its input "
            f"features are dim {feature_dim}; permute the units back to that dim first"
        )
    return layout


def check_input_sizes(network: fx.GraphModule, layers: list[WeightedLayer], groups) -> None:
    """Each layer's input features must be the units it reads times their repeat."""
    units = {g.key: unit_count(network.get_submodule(g.layers[0].target)) for g in groups}
    for layer in layers:
        module = network.get_submodule(layer.name.removeprefix(f"{NETWORK}."))
        if layer.input_segments:
            expected = sum(count * repeat for _, count, repeat in layer.input_segments)
            wrong = [k for k, count, _ in layer.input_segments if k and units[k] != count]
            parts = [f"{k}: {count} x {repeat}" for k, count, repeat in layer.input_segments]
            read = f"the concatenation of {parts} = {expected}"
        elif layer.input_mask_key is not None:
            expected, wrong = units[layer.input_mask_key] * layer.input_repeat, []
            read = (
                f"{units[layer.input_mask_key]} units of {layer.input_mask_key!r} x "
                f"{layer.input_repeat} positions = {expected}"
            )
        else:
            continue
        if module.weight.shape[1] != expected or wrong:
            raise ValueError(
                f"layer {layer.name!r} has {module.weight.shape[1]} inputs but reads {read}; "
                "wrap could not match them"
            )


def check_features(result: fx.Node, layouts) -> None:
    """The network's output must carry one layer's units (or none) along dim 1."""
    layout = layouts[result]
    if isinstance(layout, Unfollowable):
        raise ValueError(f"the network's output cannot be mapped to units: {layout.reason}")
    if isinstance(layout, Concat | Segments):
        raise ValueError(
            "the network's output concatenates the units of several layers "
            f"{[part[0] for part in getattr(layout, 'parts', ())] or list(layout.keys)}; the "
            "heads read one layer's units: end the network with a Linear (or conv) reading "
            "the concatenation"
        )
    if not isinstance(layout, Units) or (layout.key is not None and layout.dims != (1,)):
        raise ValueError(
            f"the network's output carries units along dims {getattr(layout, 'dims', '?')}, "
            "but the heads read (batch, features) with units first: reduce the token dims "
            "(x[:, 0] for a class token, x.mean(1) for the average) before returning"
        )


def renamed(layer: WeightedLayer, root: dict[str, str]) -> WeightedLayer:
    """``layer`` with the keys of merged residual-stream groups replaced by the stream's."""
    return replace(
        layer,
        mask_key=root.get(layer.mask_key, layer.mask_key),
        input_mask_key=root.get(layer.input_mask_key, layer.input_mask_key),
        input_segments=tuple(
            (root.get(key, key), count, repeat) for key, count, repeat in layer.input_segments
        ),
    )
