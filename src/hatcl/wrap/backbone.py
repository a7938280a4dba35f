"""``wrap``: a HAT-masked :class:`Backbone` of any traceable PyTorch network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import fx, nn

from hatcl.backbones.base import Backbone, BackboneOutput, WeightedLayer
from hatcl.masking.masker import HATMasker
from hatcl.masking.stage import Stage
from hatcl.wrap.fused import split_fused
from hatcl.wrap.graph import (
    MASKED_TYPES,
    PYTHON_NAMES,
    OptionNames,
    check_single_use,
    is_chain,
    module_of,
    propagate_shapes,
    shape_of,
    trace,
)
from hatcl.wrap.layers import check_features, renamed, unit_count, weighted_layers
from hatcl.wrap.protect import check_excludes, check_layers, is_excluded, loose_parameters
from hatcl.wrap.rewrite import (
    PerTaskBatchNorm,
    UnitGroup,
    insert_masks_and_taps,
    install_per_task_norms,
    residual_modules,
    token_wise,
    unit_groups,
)
from hatcl.wrap.stream import merge, stream_merges
from hatcl.wrap.units import ALWAYS_ON, Units, propagate
from hatcl.wrap.unmasked import (
    UNMASKED_CHOICES,
    FrozenAfterFirst,
    PerTaskCopy,
    insert_remasks,
    install_unmasked,
    plan_unmasked,
    remask_points,
)

BATCH_NORM_CHOICES = ("independent", "shared")


class WrappedBackbone(Backbone):
    """A user's network with a HAT mask on every weighted layer's units (built by :func:`wrap`).

    Attributes:
        network: the rewritten ``torch.fx.GraphModule`` (a copy of the user's network).
        keys: the mask keys in forward order (one per unit group).
    """

    def __init__(
        self,
        *,
        network: fx.GraphModule,
        keys: Sequence[str],
        layers: Sequence[WeightedLayer],
        taps: Sequence[str],
        output_dim: int,
        unit_counts: dict[str, int],
        masked: bool,
        sequential: bool,
    ) -> None:
        super().__init__()
        self.network = network
        self.keys = tuple(keys)
        self.weighted_layers = tuple(layers)
        self._tap_names = dict(zip(self.keys, taps))
        self.output_dim = output_dim
        self.sequential_taps = sequential
        self.masker = HATMasker(unit_counts=unit_counts) if masked else None

    def activation_module(self, mask_key: str) -> nn.Module:
        """The tap module whose output is h_l of ``mask_key``."""
        if mask_key not in self._tap_names:
            raise ValueError(
                f"wrapped backbone has no activation tap for mask key {mask_key!r}; "
                f"valid keys: {list(self.keys)}"
            )
        return self.network.get_submodule(self._tap_names[mask_key])

    def setup_task(self, task_id: int) -> None:
        """Create per-task batch norms and copies, freeze what trains on the first task only."""
        for module in self.network.modules():
            if isinstance(module, PerTaskBatchNorm | PerTaskCopy | FrozenAfterFirst):
                module.setup_task(task_id)

    def forward(
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> BackboneOutput:
        """Run the network with the masks of ``stage`` (none when unmasked)."""
        masks = self.masker.masks(stage=stage, task_id=task_id, scale=scale) if self.masker else {}
        emit = partial(self.activation, stage=stage)
        features, taps = self.network(x, task_id, emit, *(masks.get(key) for key in self.keys))
        if features.dim() > 2:
            features = features.flatten(1)
        return BackboneOutput(
            features=features, masks=masks, activations=dict(zip(self.keys, taps))
        )


def wrap(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    exclude: Sequence[str] = (),
    batch_norm: str = "independent",
    unmasked: str = "refuse",
    masked: bool = True,
    option_names: OptionNames = PYTHON_NAMES,
) -> WrappedBackbone:
    """Return a HAT-masked backbone of ``model``, ready for every algorithm and importance type.

    Every ``Linear``, ``Conv1d/2d/3d`` and ``Embedding`` gets a mask on its output units (a
    Linear on ``(batch, tokens, features)`` and an embedding: on the last dim), applied to its
    pre-activation (after a batch norm that directly follows it, and after a residual addition
    it flows into); h_l is taken after the nonlinearity that follows the mask. Which units
    feed which is followed through flatten/view, pooling, reductions, residual additions,
    concatenation (along the unit dim, a layer reads several parts, each column with its own
    part's mask), reshapes/permutes/indexing of token tensors and attention (a fused qkv is
    split into q, k, v; torch's attention modules are rewritten with explicit projections); a
    linear residual stream shares one mask. wrap works on a deep copy: the
    user's network is not modified and the backbone trains its own parameters.

    Args:
        model: the network; its forward takes one tensor and returns the features the task
            heads read (a tensor ``(batch, ...)``, flattened to ``(batch, features)``).
        example_input: a batch the network accepts (shapes are read from one forward in eval
            mode; no state changes and no random numbers are drawn).
        exclude: names of submodules left unmasked and unprotected on purpose (they still
            train: freeze them yourself if they must not move). Their outputs count as always on.
        batch_norm: ``independent`` (default: a fresh batch norm per task replaces each batch
            norm following a weighted layer, so earlier tasks stay unchanged) or ``shared``
            (the network's own batch norms, whose statistics and affine parameters drift).
        unmasked: what to do with parameters HAT cannot mask (layer norms, a batch norm not
            directly following a weighted layer, raw ``nn.Parameter``s): ``refuse`` (default:
            an error naming them), ``per_task`` (each task gets its own copy, initialised from
            the previous task's) or ``freeze`` (trained on the first task, frozen afterwards).
            The units' mask is applied again after each of them.
        masked: ``False`` builds the same backbone without masks (for the baselines).
        option_names: how error messages spell these options (the command line passes its keys).

    Raises:
        TypeError: the network cannot be traced by torch.fx (the message says what to change).
        ValueError: a parameter would be left unprotected (listing its names), a module with
            parameters is called twice, or an op hides which units a layer reads.
    """
    if batch_norm not in BATCH_NORM_CHOICES:
        raise ValueError(
            f"wrap batch_norm must be one of {', '.join(BATCH_NORM_CHOICES)}, got {batch_norm!r}"
        )
    if unmasked not in UNMASKED_CHOICES:
        raise ValueError(
            f"wrap unmasked must be one of {', '.join(UNMASKED_CHOICES)}, got {unmasked!r}"
        )
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a tensor batch, got {type(example_input).__name__}")
    excluded = check_excludes(model, exclude)
    network = trace(model, option_names)
    check_single_use(network)
    propagate_shapes(network, example_input)
    split_fused(network, excluded)
    weighted = [
        node
        for node in network.graph.nodes
        if isinstance(module_of(network, node), MASKED_TYPES)
        and not is_excluded(str(node.target), excluded)
    ]
    check_layers(network, weighted)
    groups = unit_groups(network, weighted)
    extra = []
    if masked:
        loose = loose_parameters(network, groups, excluded)
        extra = plan_unmasked(network, loose, mode=unmasked, names=option_names)
    return _build(
        network, groups, excluded, batch_norm=batch_norm, masked=masked, unmasked=(unmasked, extra)
    )


def _build(
    network: fx.GraphModule,
    groups: list[UnitGroup],
    excluded: tuple[str, ...],
    *,
    batch_norm: str,
    masked: bool,
    unmasked: tuple[str, list[fx.Node]],
) -> WrappedBackbone:
    graph = network.graph
    inputs = [node for node in graph.nodes if node.op == "placeholder"]
    if len(inputs) != 1:
        raise ValueError(
            f"wrap needs a network whose forward takes one tensor, got inputs "
            f"{[node.target for node in inputs]}"
        )
    output = next(node for node in graph.nodes if node.op == "output")
    result = output.args[0]
    if not isinstance(result, fx.Node) or shape_of(result) is None:
        raise ValueError(
            f"wrap needs a network whose forward returns one tensor (the features), got {result!r}"
        )
    features = math.prod(shape_of(result)[1:])
    with graph.inserting_after(inputs[0]):
        task_id = graph.placeholder("hat_task_id")
    with graph.inserting_after(task_id):
        emit = graph.placeholder("hat_emit")
    mask_inputs, previous = [], emit
    for group in groups:
        with graph.inserting_after(previous):
            previous = graph.placeholder(f"hat_mask_{group.key}")
        mask_inputs.append(previous)
    if batch_norm == "independent":
        install_per_task_norms(network, groups, task_id)
    installed = install_unmasked(network, unmasked[1], mode=unmasked[0], task_id=task_id)
    residual_modules(network, groups)
    applied, taps = insert_masks_and_taps(network, groups, masks=mask_inputs, emit=emit)
    layouts = _layouts(network, groups, applied, inputs[0], excluded)
    if installed and masked:
        by_key = {group.key: mask for group, mask in zip(groups, mask_inputs)}
        points = remask_points(network, installed, layouts)
        remasks = insert_remasks(network, points, layouts, by_key)
        layouts = _layouts(network, groups, applied, inputs[0], excluded, remasks)
    layers = weighted_layers(network, groups, layouts)
    check_features(output.args[0], layouts)
    units = {
        group.key: unit_count(network.get_submodule(group.layers[0].target)) for group in groups
    }
    root = stream_merges(network, groups, applied, taps, layouts, units) if masked else {}
    by_tap = {group.key: tap for group, tap in zip(groups, taps)}
    by_key = {group.key: mask for group, mask in zip(groups, mask_inputs)}
    merge(graph, root, by_key, by_tap)
    position = {node: index for index, node in enumerate(graph.nodes)}
    keys = sorted(by_tap, key=lambda key: position[by_tap[key]])  # forward order of the taps
    for previous, key in zip([emit, *(by_key[k] for k in keys)], keys):
        previous.append(by_key[key])  # mask inputs in the order of the keys
    layers = [renamed(layer, root) for layer in layers]
    output.args = ((output.args[0], tuple(by_tap[key] for key in keys)),)
    graph.lint()
    network.recompile()
    return WrappedBackbone(
        network=network,
        keys=keys,
        layers=layers,
        taps=[str(by_tap[key].target) for key in keys],
        output_dim=features,
        unit_counts={key: units[key] for key in keys},
        masked=masked,
        sequential=is_chain(network, inputs[0], [by_tap[key] for key in keys]),
    )


def _layouts(network, groups, applied, input_node, excluded, extra=None):
    fixed: dict = {input_node: ALWAYS_ON, **(extra or {})}
    for node in network.graph.nodes:
        if node.op == "call_module" and is_excluded(str(node.target), excluded):
            fixed[node] = ALWAYS_ON
    for group, mask in zip(groups, applied):
        dims = (len(shape_of(mask)) - 1,) if token_wise(network, group) else (1,)
        fixed[mask] = Units(group.key, dims=dims)
        for node in group.layers:
            fixed[node] = Units(group.key, dims=dims)
    return propagate(network, fixed=fixed)
