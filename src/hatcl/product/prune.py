"""Exact pruning of one task's subnetwork: kept units, sliced layers and norms, cost counts.

Under task T's binary masks a unit with mask 0 outputs exactly 0 after its nonlinearity (a ReLU
maps the masked 0 to 0), so removing the unit, its row of ``W_l``, its batch-norm entry and the
matching input columns (or channels) of the layers it feeds leaves every kept unit's value
unchanged; a unit with mask 1 is multiplied by exactly 1, so the mask folds away.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from hatcl.wrap.graph import BATCH_NORM_TYPES, WEIGHTED_TYPES

Kept = Mapping[str, torch.Tensor | None]
"""Per mask key, the indices of task T's kept units (``None``: every unit, no masks)."""


def kept_units(
    backbone: nn.Module, task_id: int, *, prune: bool = True
) -> dict[str, torch.Tensor | None]:
    """Indices of the units task ``task_id``'s stored binary masks keep, per mask key.

    A backbone without masks (a baseline's), or ``prune=False``, keeps every unit: ``None``.
    """
    masker = getattr(backbone, "masker", None)
    if masker is None or not prune:
        layers = getattr(backbone, "weighted_layers", ())
        return {layer.mask_key: None for layer in layers}
    masks = masker.store.mask(task_id)
    return {key: (mask > 0.5).nonzero().flatten().cpu() for key, mask in masks.items()}


def expand(index: torch.Tensor | None, repeat: int) -> torch.Tensor | None:
    """Feature indices of units ``index`` when each unit spans ``repeat`` features (flatten)."""
    if index is None or repeat == 1:
        return index
    return (index[:, None] * repeat + torch.arange(repeat)).flatten()


def slice_layer(
    module: nn.Module, *, rows: torch.Tensor | None, columns: torch.Tensor | None
) -> nn.Module:
    """A copy of a Linear or Conv layer keeping output units ``rows`` and inputs ``columns``.

    Raises:
        ValueError: a grouped convolution (its input channels cannot be selected per group).
    """
    if not isinstance(module, WEIGHTED_TYPES):
        raise TypeError(f"cannot prune a {type(module).__name__}: Linear or Conv layers only")
    if getattr(module, "groups", 1) != 1:
        raise ValueError(
            f"cannot prune the grouped convolution {module!r} (groups={module.groups}); "
            "export prunes convolutions with groups=1"
        )
    pruned = copy.deepcopy(module)
    weight = module.weight.detach()
    if rows is not None:
        weight = weight.index_select(0, rows.to(weight.device))
    if columns is not None:
        weight = weight.index_select(1, columns.to(weight.device))
    pruned.weight = nn.Parameter(weight.clone(), requires_grad=False)
    if module.bias is not None:
        bias = module.bias.detach()
        bias = bias if rows is None else bias.index_select(0, rows.to(bias.device))
        pruned.bias = nn.Parameter(bias.clone(), requires_grad=False)
    if isinstance(pruned, nn.Linear):
        pruned.out_features, pruned.in_features = weight.shape[0], weight.shape[1]
    else:
        pruned.out_channels, pruned.in_channels = weight.shape[0], weight.shape[1]
    return pruned


def slice_norm(norm: nn.Module, index: torch.Tensor | None) -> nn.Module:
    """A copy of a batch norm (in eval mode) keeping the entries ``index``."""
    if not isinstance(norm, BATCH_NORM_TYPES):
        raise TypeError(f"cannot prune a {type(norm).__name__}: BatchNorm layers only")
    pruned = copy.deepcopy(norm).eval()
    if index is None:
        return pruned
    for name, tensor in list(norm.named_parameters(recurse=False)):
        kept = tensor.detach().index_select(0, index.to(tensor.device)).clone()
        setattr(pruned, name, nn.Parameter(kept, requires_grad=False))
    for name in ("running_mean", "running_var"):
        tensor = getattr(norm, name, None)
        if tensor is not None:
            setattr(pruned, name, tensor.index_select(0, index.to(tensor.device)).clone())
    pruned.num_features = int(index.numel())
    return pruned


def task_norm(placement: nn.Module, task_id: int) -> nn.Module | None:
    """The batch norm a hatcl norm placement applies for ``task_id`` (``None``: no norm)."""
    if isinstance(placement, BATCH_NORM_TYPES):
        return placement
    norms = getattr(placement, "norms", None)
    if isinstance(norms, nn.ModuleDict):  # one batch norm per task
        if str(task_id) not in norms:
            raise ValueError(f"task {task_id} has no batch norm; set up tasks {list(norms)}")
        return norms[str(task_id)]
    return getattr(placement, "norm", None)  # shared norm, or none


def optional_norm(placement: nn.Module, task_id: int, index: torch.Tensor | None) -> nn.Module:
    """Task ``task_id``'s batch norm of ``placement`` pruned to ``index``, or an identity."""
    norm = task_norm(placement, task_id)
    return nn.Identity() if norm is None else slice_norm(norm, index)


class ChannelGather(nn.Module):
    """Dim-1 entries of a pruned tensor laid out as another pruned tensor's units.

    Output channel ``i`` is input channel ``index[i]``; ``index[i] == C`` (the number of input
    channels) gives zeros: the unit was pruned from the input, where it was exactly 0. Used where
    an identity shortcut adds the units of one mask to those of another.
    """

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = x.new_zeros((x.shape[0], 1, *x.shape[2:]))
        return torch.cat([x, zero], dim=1).index_select(1, self.index)


def gather_index(
    source: torch.Tensor | None, target: torch.Tensor | None, *, units: int
) -> torch.Tensor | None:
    """The :class:`ChannelGather` index taking kept units ``source`` to kept units ``target``.

    ``None`` when no gather is needed (both keep the same units). ``units`` is the full count.
    """
    source_units = torch.arange(units) if source is None else source
    target_units = torch.arange(units) if target is None else target
    if torch.equal(source_units, target_units):
        return None
    position = torch.full((units,), len(source_units), dtype=torch.long)
    position[source_units] = torch.arange(len(source_units))
    return position[target_units]


def count_parameters(module: nn.Module) -> int:
    """Number of parameter entries of ``module``."""
    return sum(parameter.numel() for parameter in module.parameters())


def count_macs(module: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of the Linear and Conv layers of one forward, per sample of ``example``."""
    total = [0]

    def hook(layer: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        per_output = layer.weight[0].numel()  # inputs (x kernel) feeding one output entry
        total[0] += output.numel() // output.shape[0] * per_output

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, WEIGHTED_TYPES)
    ]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for handle in handles:
            handle.remove()
    return total[0]
