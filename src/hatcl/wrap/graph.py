"""Tracing a user's network with torch.fx: the graph, node shapes and one module per call site."""

from __future__ import annotations

import copy
import operator
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

WEIGHTED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""The weight-carrying layers wrap masks (their output units get a HAT mask)."""

MASKED_TYPES = (*WEIGHTED_TYPES, nn.Embedding)
"""Every layer wrap masks: an embedding's units are its embedding dim (the output's last dim)."""

BATCH_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

ACTIVATION_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
)
ACTIVATION_FUNCTIONS = frozenset(
    {
        torch.relu,
        F.relu,
        F.relu6,
        F.leaky_relu,
        F.elu,
        F.gelu,
        F.silu,
        F.mish,
        torch.sigmoid,
        F.sigmoid,
        torch.tanh,
        F.tanh,
        F.softplus,
        F.hardtanh,
        F.hardswish,
    }
)
ACTIVATION_METHODS = frozenset({"relu", "sigmoid", "tanh"})

ADD_FUNCTIONS = frozenset({operator.add, operator.iadd, torch.add})
ADD_METHODS = frozenset({"add", "add_"})


@dataclass(frozen=True)
class OptionNames:
    """How error messages spell wrap's options (Python keywords, or the command line's keys)."""

    exclude: str = "exclude=[...]"
    unmasked: str = "unmasked="


PYTHON_NAMES = OptionNames()
CLI_NAMES = OptionNames(exclude="backbone.exclude=[...]", unmasked="backbone.unmasked=")


def trace(model: nn.Module, names: OptionNames = PYTHON_NAMES) -> fx.GraphModule:
    """Symbolically trace ``model`` (a deep copy: the user's network is never modified)."""
    from hatcl.wrap.attention import make_explicit

    try:
        return fx.symbolic_trace(make_explicit(model))
    except Exception as error:  # fx raises TraceError, TypeError, RuntimeError, ...
        raise TypeError(
            f"wrap could not trace {type(model).__name__} with torch.fx: {error}. "
            "wrap follows the forward symbolically, so it cannot take Python control flow that "
            "depends on tensor values (if/while on a tensor, .item(), data-dependent shapes). "
            f"Move such logic out of forward, or into a submodule passed in {names.exclude} "
            "(its parameters then train unprotected)."
        ) from error


def propagate_shapes(graph_module: fx.GraphModule, example_input: torch.Tensor) -> None:
    """Record every node's output shape (``node.meta['tensor_meta']``) on ``example_input``.

    Runs in eval mode with the RNG streams forked, so wrapping changes no state and draws no
    random numbers (dropout would).
    """
    modes = [(module, module.training) for module in graph_module.modules()]
    graph_module.eval()
    try:
        with torch.random.fork_rng(), torch.no_grad():
            ShapeProp(graph_module).propagate(example_input)
    except Exception as error:
        raise ValueError(
            f"the network's forward failed on example_input of shape "
            f"{tuple(example_input.shape)}: {error}; pass a batch the network accepts"
        ) from error
    finally:
        for module, training in modes:
            module.training = training


def shape_of(node: fx.Node) -> tuple[int, ...] | None:
    """The output shape of ``node`` on the example input (``None`` for non-tensors)."""
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return tuple(int(d) for d in meta.shape)


def check_single_use(graph_module: fx.GraphModule) -> None:
    """One module per call site: refuse a module with parameters called twice, copy the others.

    A module with parameters called at two places shares its weights between them (its units
    would need two masks at once). A parameter-free module (a ReLU, a pooling) used at several
    places gets one copy per place, so that attribution methods treating modules by type
    (DeepLift, LRP) see each place once.
    """
    calls = Counter(node.target for node in graph_module.graph.nodes if node.op == "call_module")
    shared = [name for name, count in calls.items() if count > 1]
    with_weights = [
        name for name in shared if any(True for _ in graph_module.get_submodule(name).parameters())
    ]
    if with_weights:
        raise ValueError(
            f"module(s) {with_weights} are called more than once in one forward: their weights "
            "would serve several places, each needing its own mask. Give each place its own "
            "module (weight sharing across places is not supported)"
        )
    seen: set[str] = set()
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module" or calls[node.target] < 2:
            continue
        if node.target not in seen:
            seen.add(node.target)
            continue
        clone = copy.deepcopy(graph_module.get_submodule(node.target))
        node.target = add_module(graph_module, f"{node.target}_copy", clone)


def add_module(graph_module: fx.GraphModule, name: str, module: nn.Module) -> str:
    """Add ``module`` under a fresh top-level name derived from ``name``; returns the name."""
    base = "hat_" + name.replace(".", "_")
    candidate, index = base, 1
    while hasattr(graph_module, candidate):
        index += 1
        candidate = f"{base}_{index}"
    graph_module.add_submodule(candidate, module)
    return candidate


def module_of(graph_module: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The module a ``call_module`` node calls, else ``None``."""
    if node.op != "call_module":
        return None
    return graph_module.get_submodule(node.target)


def is_activation(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` is an elementwise nonlinearity without parameters."""
    module = module_of(graph_module, node)
    if module is not None:
        return isinstance(module, ACTIVATION_MODULES)
    if node.op == "call_function":
        return node.target in ACTIVATION_FUNCTIONS
    return node.op == "call_method" and node.target in ACTIVATION_METHODS


DROPOUT_TYPES = (nn.Dropout, nn.Identity)


def is_dropout(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` is a dropout (or an identity): the identity at test time."""
    if isinstance(module_of(graph_module, node), DROPOUT_TYPES):
        return True
    return node.op == "call_function" and node.target is F.dropout


def is_add(node: fx.Node) -> bool:
    """Whether ``node`` adds two tensors (a residual connection)."""
    if node.op == "call_function" and node.target in ADD_FUNCTIONS:
        tensors = [arg for arg in node.args if isinstance(arg, fx.Node)]
        return len(tensors) == 2 and "alpha" not in node.kwargs
    if node.op == "call_method" and node.target in ADD_METHODS:
        tensors = [arg for arg in node.args if isinstance(arg, fx.Node)]
        return len(tensors) == 2 and "alpha" not in node.kwargs
    return False


def describe(node: fx.Node) -> str:
    """A short, user-facing name of what a node does."""
    if node.op == "call_module":
        return f"module {node.target!r}"
    if node.op == "call_method":
        return f"method .{node.target}()"
    if node.op == "call_function":
        return f"function {getattr(node.target, '__name__', str(node.target))}()"
    return f"{node.op} {node.target!r}"


def is_chain(network: fx.GraphModule, input_node: fx.Node, taps: list[fx.Node]) -> bool:
    """Whether everything after each tap depends on the input only through that tap.

    True for a plain chain: every node computed from the input has one such argument and at
    most one user (attribution may then run only the layers after a tap).
    """
    dependent = {input_node}
    for node in network.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        sources = [a for a in _node_args(node) if a in dependent]
        if not sources:
            continue
        dependent.add(node)
        if len(sources) > 1 or len([u for u in node.users if _carries_tensor(u)]) > 1:
            return False
    return bool(taps)


def _carries_tensor(node: fx.Node) -> bool:
    """Whether a user passes tensors on (not the output, not a ``.size()`` read)."""
    return node.op != "output" and not (node.op == "call_method" and node.target == "size")


def _node_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), found.append)
    return found
