"""Fused projections (``qkv = nn.Linear(d, 3 * d)`` split by reshape/unbind or chunk): one
Linear per part, so that q, k and v each own a unit group and a mask.

The rewritten graph computes ``torch.cat([q(x), k(x), v(x)], -1)`` in place of ``qkv(x)``, with
the fused weight's rows copied into the parts: the forward is unchanged, and the reshape/permute/
unbind that follows hands each part's units on (:mod:`hatcl.wrap.tokens`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import fx, nn

from hatcl.wrap.graph import add_module, module_of, shape_of
from hatcl.wrap.protect import is_excluded

_NAMES = {2: ("k", "v"), 3: ("q", "k", "v")}


def split_fused(network: fx.GraphModule, excluded: tuple[str, ...]) -> None:
    """Replace each fused Linear (see the module doc) by one Linear per part."""
    for node in list(network.graph.nodes):
        module = module_of(network, node)
        if not isinstance(module, nn.Linear) or is_excluded(str(node.target), excluded):
            continue
        parts = fused_parts(node)
        if parts > 1 and module.out_features % parts == 0:
            _split(network, node, module, parts)


def fused_parts(node: fx.Node) -> int:
    """How many parts the only user of ``node`` splits its last dim into (1: not fused)."""
    source = shape_of(node)
    if len(node.users) != 1 or source is None:
        return 1
    user = next(iter(node.users))
    if user.op == "call_method" and user.target == "chunk":
        dim = user.args[2] if len(user.args) > 2 else user.kwargs.get("dim", 0)
        return int(user.args[1]) if dim % len(source) == len(source) - 1 else 1
    reshapes = ("reshape", "view", torch.reshape)
    out = shape_of(user)
    if user.target not in reshapes or out is None or len(out) <= len(source):
        return 1
    lead = len(source) - 1
    if out[:lead] == source[:lead] and math.prod(out[lead:]) == source[-1]:
        return int(out[lead]) if out[lead] in (2, 3) else 1
    return 1


def _split(network: fx.GraphModule, node: fx.Node, module: nn.Linear, parts: int) -> None:
    size = module.out_features // parts
    names = _NAMES.get(parts, tuple(str(i) for i in range(parts)))
    outputs = []
    meta = node.meta.get("tensor_meta")
    for index, name in enumerate(names):
        part = copy.deepcopy(module)
        rows = slice(index * size, (index + 1) * size)
        part.weight = nn.Parameter(module.weight.detach()[rows].clone())
        if module.bias is not None:
            part.bias = nn.Parameter(module.bias.detach()[rows].clone())
        part.out_features = size
        target = add_module(network, f"{node.target}_{name}", part)
        with network.graph.inserting_before(node):
            call = network.graph.call_module(target, node.args, node.kwargs)
        call.meta = dict(node.meta)
        if meta is not None:
            call.meta["tensor_meta"] = meta._replace(shape=torch.Size((*meta.shape[:-1], size)))
        outputs.append(call)
    with network.graph.inserting_before(node):
        joined = network.graph.call_function(torch.cat, (outputs, -1))
    joined.meta = dict(node.meta)
    node.replace_all_uses_with(joined)
    network.graph.erase_node(node)
    network.delete_submodule(str(node.target))
