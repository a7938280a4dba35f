"""Parameters HAT cannot mask (layer norms, a batch norm elsewhere, raw ``nn.Parameter``s).

``unmasked="refuse"`` (the default) names them in an error. ``"per_task"`` gives each task its own
copy, created at the task's set-up from the previous task's copy (the network's values for the
first task), so later tasks never change an earlier task's. ``"freeze"`` trains them on the first
task and freezes them afterwards (no gradient, batch-norm statistics no longer updated).

A module owning such parameters (e.g. ``nn.LayerNorm``) is wrapped whole; a raw parameter read in
forward (``self.cls_token``) is replaced by a module returning its task's value. Their outputs can
turn units that a task's mask switched off into non-zero values (a layer norm's shift, an added
positional embedding), which later tasks' weights would then read; wrap therefore applies the
units' mask again right after each of them (:func:`hatcl.wrap.backbone.wrap`).
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from hatcl.backbones.base import ApplyMask
from hatcl.wrap.graph import OptionNames, add_module, describe, shape_of
from hatcl.wrap.protect import refuse_unprotected
from hatcl.wrap.rewrite import ApplyMaskLast
from hatcl.wrap.tokens import Concat, Segments, as_concat

UNMASKED_CHOICES = ("refuse", "per_task", "freeze")


class PerTaskCopy(nn.Module):
    """One copy of ``template`` per task, each initialised from the previous task's copy.

    Args:
        template: the network's module (its values initialise the first task's copy).
    """

    task_specific = True  # the forward depends on task_id (Backbone.depends_on_task)

    def __init__(self, template: nn.Module) -> None:
        super().__init__()
        self.initial = template.requires_grad_(False)  # kept for the first copy, never trained
        self.copies = nn.ModuleDict()

    def setup_task(self, task_id: int) -> None:
        """Create the task's copy (from the latest copy, or the network's values) if missing."""
        if str(task_id) not in self.copies:
            source = list(self.copies.values())[-1] if len(self.copies) else self.initial
            self.copies[str(task_id)] = copy.deepcopy(source).requires_grad_(True)

    def forward(self, *args, hat_task_id: int, **kwargs):
        key = str(hat_task_id)
        if key not in self.copies:
            raise ValueError(f"task {hat_task_id} has no copy; set up tasks {list(self.copies)}")
        return self.copies[key](*args, **kwargs)


class FrozenAfterFirst(nn.Module):
    """``module`` trained on the first task set up, frozen (and kept in eval mode) afterwards."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("first_task", torch.tensor(-1, dtype=torch.long))

    def setup_task(self, task_id: int) -> None:
        """Remember the first task; freeze the module for any other."""
        if int(self.first_task) < 0:
            self.first_task.fill_(task_id)
        self.module.requires_grad_(int(self.first_task) == task_id)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        frozen = int(self.first_task) >= 0 and not any(
            p.requires_grad for p in self.module.parameters()
        )
        if frozen:
            self.module.eval()  # no statistics updates after the first task
        return self

    def forward(self, *args, hat_task_id: int, **kwargs):
        return self.module(*args, **kwargs)


class ParameterModule(nn.Module):
    """A raw parameter as a module: its forward returns it (so it can be copied or frozen)."""

    def __init__(self, value: nn.Parameter) -> None:
        super().__init__()
        self.value = value

    def forward(self) -> torch.Tensor:
        return self.value


def unmasked_nodes(network: fx.GraphModule, loose: set[str]) -> tuple[list, list[str]]:
    """The nodes using ``loose`` parameters, and the parameter names no node covers whole.

    A ``call_module`` node qualifies when every parameter of its module is loose; a
    ``get_attr`` node when it reads one loose parameter.
    """
    nodes, covered = [], set()
    for node in network.graph.nodes:
        if node.op == "call_module":
            names = [
                f"{node.target}.{n}"
                for n, _ in network.get_submodule(node.target).named_parameters()
            ]
            if names and all(name in loose for name in names):
                nodes.append(node)
                covered.update(names)
        elif node.op == "get_attr" and str(node.target) in loose:
            nodes.append(node)
            covered.add(str(node.target))
    return nodes, sorted(loose - covered)


def install_unmasked(network: fx.GraphModule, nodes: list, *, mode: str, task_id) -> list:
    """Wrap each node's module (or raw parameter) as ``mode`` says; returns the new nodes."""
    wrapper = PerTaskCopy if mode == "per_task" else FrozenAfterFirst
    installed, made, originals = [], {}, []
    for node in nodes:
        original = str(node.target)
        if node.op == "get_attr":
            if original not in made:
                value = ParameterModule(network.get_parameter(original))
                made[original] = add_module(network, f"{original}_{mode}", wrapper(value))
            with network.graph.inserting_after(node):
                call = network.graph.call_module(made[original], kwargs={"hat_task_id": task_id})
            call.meta = dict(node.meta)
            node.replace_all_uses_with(call)
            network.graph.erase_node(node)
            installed.append(call)
        else:
            module = wrapper(network.get_submodule(original))
            node.target = add_module(network, f"{original}_{mode}", module)
            node.kwargs = {**node.kwargs, "hat_task_id": task_id}
            installed.append(node)
        originals.append(original)
    for original in dict.fromkeys(originals):  # now held by the wrappers only
        owner, _, leaf = original.rpartition(".")
        delattr(network.get_submodule(owner) if owner else network, leaf)
    return installed


def plan_unmasked(
    network: fx.GraphModule, loose: list[str], *, mode: str, names: OptionNames
) -> list[fx.Node]:
    """The nodes whose parameters ``mode`` handles; refuses what it cannot."""
    if not loose:
        return []
    if mode == "refuse":
        refuse_unprotected(loose, names)
    nodes, uncovered = unmasked_nodes(network, set(loose))
    if uncovered:
        raise ValueError(
            f"parameters {uncovered} are used by modules that also hold masked or excluded "
            f"parameters, so {names.unmasked}{mode} cannot copy or freeze them alone; move "
            f"them into a module of their own, or pass it in {names.exclude}"
        )
    return nodes


def remask_points(network: fx.GraphModule, installed: list[fx.Node], layouts) -> list:
    """Where the units' mask is applied again: after each wrapped module, and after the first
    ops carrying masked units downstream of a wrapped raw parameter (an added positional
    embedding, a concatenated class token, a scale)."""
    points: list[fx.Node] = []
    for node in installed:
        wrapper = network.get_submodule(node.target)
        inner = wrapper.initial if isinstance(wrapper, PerTaskCopy) else wrapper.module
        if not isinstance(inner, ParameterModule):
            points.append(node)
            continue
        frontier, seen = list(node.users), set()
        while frontier:
            user = frontier.pop()
            if user in seen or user.op == "output":
                continue
            seen.add(user)
            if getattr(layouts.get(user), "key", None) is not None or isinstance(
                layouts.get(user), Concat
            ):
                points.append(user)
            elif getattr(layouts.get(user), "key", 0) is None:
                frontier.extend(user.users)  # still always on: follow it to where units join
    return list(dict.fromkeys(points))


def inner_module(module: nn.Module) -> nn.Module:
    """The network's module inside a per-task or frozen wrapper (``module`` itself otherwise)."""
    if isinstance(module, PerTaskCopy):
        return module.initial
    if isinstance(module, FrozenAfterFirst):
        return module.module
    return module


def insert_remasks(
    network: fx.GraphModule, points: list[fx.Node], layouts: dict, masks: dict
) -> dict[fx.Node, object]:
    """Apply the units' mask again after each point carrying masked units; returns the layouts
    of the inserted nodes (the same units)."""
    fixed = {}
    for point in points:
        layout = layouts.get(point)
        if isinstance(layout, Segments) and layout.select is None:
            layout = as_concat(layout, shape_of(point)[layout.dims[0]])
        if getattr(layout, "key", None) is None and not isinstance(layout, Concat):
            continue  # always-on or unfollowable units: nothing to mask (refused later if read)
        rank = len(shape_of(point) or ())
        if layout.dims not in ((1,), (rank - 1,)):
            raise ValueError(
                f"{describe(point)} (node {point.name!r}) carries units of "
                f"{getattr(layout, 'key', None) or layout.parts} along dims {layout.dims}; wrap "
                "applies their mask again after a parameter it cannot mask only along dim 1 or "
                "the last dim"
            )
        module = ApplyMask() if layout.dims == (1,) else ApplyMaskLast()
        name = add_module(network, f"{point.name}_remask", module)
        with network.graph.inserting_after(point):
            mask = _mask_of(network, layout, masks)
        with network.graph.inserting_after(point if mask.op == "placeholder" else mask):
            masked = network.graph.call_module(name, (point,), {"mask": mask})
        masked.meta = dict(point.meta)
        point.replace_all_uses_with(masked, delete_user_cb=lambda user, m=masked: user is not m)
        fixed[masked] = layout
    return fixed


def _mask_of(network: fx.GraphModule, layout, masks: dict) -> fx.Node:
    """The mask input of ``layout``'s units; for a concatenation, its parts' masks joined."""
    if not isinstance(layout, Concat):
        return masks[layout.key]
    counts = tuple((key is not None, units, repeat) for key, units, repeat in layout.parts)
    parts = tuple(masks[key] if key is not None else None for key, _, _ in layout.parts)
    return network.graph.call_function(concat_masks, (counts, parts))


def concat_masks(counts: tuple[tuple[bool, int, int], ...], masks: tuple) -> torch.Tensor | None:
    """The mask of a concatenation along the unit dim, from ``(masked, units, repeat)`` and the
    mask (or ``None``) of each part: ones for an always-on part, each unit repeated over the
    features it spans; ``None`` when the masked parts have no masks (an unmasked forward).
    """
    keyed = [mask for mask, (masked, _, _) in zip(masks, counts) if masked]
    if any(mask is None for mask in keyed):
        return None
    like = keyed[0]
    return torch.cat(
        [
            (
                torch.ones(units, dtype=like.dtype, device=like.device) if mask is None else mask
            ).repeat_interleave(repeat)
            for mask, (_, units, repeat) in zip(masks, counts)
        ]
    )
