"""Rewriting the traced graph: unit groups, per-task batch norms, masks and activation taps.

A weighted layer's *pre-activation* starts at its output, takes a batch norm that directly
follows it, and then every addition it alone flows into (a residual connection). Layers whose
pre-activations end at the same node produce the same units (a ResNet block's last conv and its
shortcut conv): they form one unit group with one mask key. The mask is applied right after that
end node; h_l is the mask's output after a directly following nonlinearity, and goes through the
backbone's activation transform and an :class:`ActivationTap` (attribution hooks the tap).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from hatcl.backbones.base import ActivationTap, Add, ApplyMask
from hatcl.wrap.graph import (
    BATCH_NORM_TYPES,
    add_module,
    is_activation,
    is_add,
    is_dropout,
    module_of,
    shape_of,
)


@dataclass
class UnitGroup:
    """The weighted layers writing one set of units, and where their pre-activation ends."""

    key: str
    layers: list[fx.Node]
    end: fx.Node
    norms: list[fx.Node] = field(default_factory=list)
    adds: list[fx.Node] = field(default_factory=list)


class PerTaskBatchNorm(nn.Module):
    """One fresh copy of a batch norm per task (created at task set-up, never shared).

    Args:
        template: the network's batch norm; each task gets a copy with reset parameters and
            statistics (as a newly built one would have).
    """

    task_specific = True  # the forward depends on task_id (Backbone.depends_on_task)

    def __init__(self, template: nn.Module) -> None:
        super().__init__()
        self.num_features = int(template.num_features)
        self.norms = nn.ModuleDict()
        self._template = [template]  # a list: not registered, not in state_dict

    def setup_task(self, task_id: int) -> None:
        """Create the task's batch norm if it does not exist yet."""
        key = str(task_id)
        if key not in self.norms:
            norm = copy.deepcopy(self._template[0])
            norm.reset_parameters()
            reference = next(iter(self.norms.values()), None)
            if reference is not None:
                norm.to(next(reference.buffers()).device)
            self.norms[key] = norm

    def forward(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        key = str(task_id)
        if key not in self.norms:
            raise ValueError(f"task {task_id} has no batch norm; set up tasks {list(self.norms)}")
        return self.norms[key](x)


class ApplyMaskLast(nn.Module):
    """Multiply by the unit mask along the last dim (a Linear on ``(batch, ..., features)``)."""

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x if mask is None else x * mask


def units_first(x: torch.Tensor) -> torch.Tensor:
    """Move the last dim (units of a token-wise Linear) to dim 1, where h_l keeps its units."""
    return x.movedim(-1, 1)


def units_last(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`units_first`."""
    return x.movedim(1, -1)


def emit_activation(emit, key: str, hidden: torch.Tensor) -> torch.Tensor:
    """h_l as the network uses it: through the backbone's activation transform, if any."""
    return hidden if emit is None else emit(key, hidden)


def unit_groups(graph_module: fx.GraphModule, weighted: list[fx.Node]) -> list[UnitGroup]:
    """Group the weighted layers by the end of their pre-activation, in forward order."""
    ends: dict[fx.Node, UnitGroup] = {}
    for node in weighted:
        end, norms, adds = pre_activation_end(graph_module, node)
        group = ends.get(end)
        if group is None:
            group = ends[end] = UnitGroup(key=_key(node), layers=[], end=end)
        group.layers.append(node)
        group.norms.extend(norms)
        group.adds.extend(add for add in adds if add not in group.adds)
    order = {node: index for index, node in enumerate(graph_module.graph.nodes)}
    return sorted(ends.values(), key=lambda group: order[group.end])


def pre_activation_end(
    graph_module: fx.GraphModule, node: fx.Node
) -> tuple[fx.Node, list[fx.Node], list[fx.Node]]:
    """The last node of ``node``'s pre-activation, its batch norm (if any) and additions."""
    norms, adds = [], []
    if len(node.users) == 1:
        user = next(iter(node.users))
        if isinstance(module_of(graph_module, user), BATCH_NORM_TYPES):
            norms.append(user)
            node = user
    while True:
        passed = node
        while len(passed.users) == 1 and is_dropout(graph_module, next(iter(passed.users))):
            passed = next(iter(passed.users))  # identity at test: x + dropout(proj(h))
        if len(passed.users) != 1 or not is_add(next(iter(passed.users))):
            return node, norms, adds
        node = next(iter(passed.users))
        adds.append(node)


def _key(node: fx.Node) -> str:
    return str(node.target).replace(".", "_")


def install_per_task_norms(graph_module: fx.GraphModule, groups: list[UnitGroup], task_id_node):
    """Replace each group's batch norms by :class:`PerTaskBatchNorm` (fed the task id)."""
    for group in groups:
        for norm in group.norms:
            original = str(norm.target)
            template = graph_module.get_submodule(original)
            norm.target = add_module(
                graph_module, f"{original}_per_task", PerTaskBatchNorm(template)
            )
            norm.args = (*norm.args, task_id_node)
            graph_module.delete_submodule(original)  # unused now; the user's module stays


def residual_modules(graph_module: fx.GraphModule, groups: list[UnitGroup]) -> None:
    """Make each residual addition an :class:`Add` module (LRP splits relevance at modules)."""
    for group in groups:
        for node in group.adds:
            tensors = tuple(arg for arg in node.args if isinstance(arg, fx.Node))
            name = add_module(graph_module, f"{node.name}_add", Add())
            with graph_module.graph.inserting_after(node):
                module_call = graph_module.graph.call_module(name, args=tensors)
            module_call.meta = dict(node.meta)
            node.replace_all_uses_with(module_call)
            graph_module.graph.erase_node(node)
            if group.end is node:
                group.end = module_call


def insert_masks_and_taps(
    graph_module: fx.GraphModule, groups: list[UnitGroup], *, masks: list, emit
) -> tuple[list[fx.Node], list[fx.Node]]:
    """Insert each group's mask, activation transform and tap; returns mask and tap nodes."""
    graph = graph_module.graph
    applied, taps = [], []
    for group, mask_input in zip(groups, masks):
        tokens = token_wise(graph_module, group)
        mask_module = ApplyMaskLast() if tokens else ApplyMask()
        mask_name = add_module(graph_module, f"{group.key}_mask", mask_module)
        with graph.inserting_after(group.end):
            masked = graph.call_module(mask_name, (group.end,), {"mask": mask_input})
        masked.meta = dict(group.end.meta)
        group.end.replace_all_uses_with(masked, delete_user_cb=lambda user, m=masked: user is not m)
        hidden = masked
        if len(masked.users) == 1 and is_activation(graph_module, next(iter(masked.users))):
            hidden = next(iter(masked.users))
        taps.append(_tap(graph_module, group.key, hidden, emit, tokens=tokens))
        applied.append(masked)
    return applied, taps


def token_wise(graph_module: fx.GraphModule, group: UnitGroup) -> bool:
    """Whether the group's units lie along the last dim of a tensor with more than 2 dims."""
    shape = shape_of(group.end)
    return (
        shape is not None
        and len(shape) > 2
        and isinstance(graph_module.get_submodule(group.layers[0].target), nn.Linear | nn.Embedding)
    )


def _tap(graph_module: fx.GraphModule, key: str, hidden: fx.Node, emit, *, tokens: bool):
    """Insert transform and tap after ``hidden``; token-wise units are tapped on dim 1."""
    graph = graph_module.graph
    tap_name = add_module(graph_module, f"{key}_tap", ActivationTap())
    first = hidden
    if tokens:
        with graph.inserting_after(hidden):
            first = graph.call_function(units_first, (hidden,))
    with graph.inserting_after(first):
        emitted = graph.call_function(emit_activation, (emit, key, first))
    with graph.inserting_after(emitted):
        tap = graph.call_module(tap_name, (emitted,))
    last = tap
    if tokens:
        with graph.inserting_after(tap):
            last = graph.call_function(units_last, (tap,))
    meta = dict(hidden.meta)
    if tokens and "tensor_meta" in meta:
        moved = torch.empty(meta["tensor_meta"].shape, device="meta").movedim(-1, 1)
        meta["tensor_meta"] = meta["tensor_meta"]._replace(shape=moved.shape)
    for node in {first, emitted, tap}:
        node.meta = meta
    last.meta = dict(hidden.meta)  # shapes stay readable
    keep = first if tokens else emitted
    hidden.replace_all_uses_with(last, delete_user_cb=lambda user: user is not keep)
    return tap
