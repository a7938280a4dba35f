"""Contracts shared by every backbone: weighted-layer descriptors and the typed forward output."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from hatcl.masking.masker import HATMasker
from hatcl.masking.stacked import is_stacked
from hatcl.masking.stage import Stage


@dataclass(frozen=True)
class WeightedLayer:
    """A weight-carrying backbone layer and the units on either side of it.

    Attributes:
        name: the module's path inside the backbone (``backbone.get_submodule(name)``).
        mask_key: the units (mask) its outputs belong to.
        input_mask_key: the units feeding it, ``None`` for a layer fed by the raw input.
        input_repeat: how many input features each input unit spans (a conv channel flattened
            into a linear layer spans ``H * W`` features, in flatten order); 1 otherwise.
        input_segments: for a layer reading a concatenation along its input-feature dim
            (DenseNet), one ``(mask key or None, units, repeat)`` per concatenated part, in
            order (``None``: always-on features such as the raw input); ``input_mask_key`` is
            then ``None``. Empty otherwise.
        unit_dim: the weight dim of the output units: 0 (``(out, in, *kernel)``), or 1 for an
            embedding table ``(tokens, units)``, whose entries have no input unit.
    """

    name: str
    mask_key: str
    input_mask_key: str | None
    input_repeat: int = 1
    input_segments: tuple[tuple[str | None, int, int], ...] = ()
    unit_dim: int = 0


@dataclass(frozen=True)
class BackboneOutput:
    """What a backbone forward returns.

    Attributes:
        features: the last layer's output, input of the heads.
        masks: per mask key, the unit mask applied in this pass (soft and differentiable in
            training; empty for an unmasked backbone).
        activations: per mask key, the layer's output after mask and nonlinearity (h_l).
    """

    features: torch.Tensor
    masks: Mapping[str, torch.Tensor] = field(default_factory=dict)
    activations: Mapping[str, torch.Tensor] = field(default_factory=dict)


ActivationTransform = Callable[[torch.Tensor], torch.Tensor]
"""A function of h_l returning the tensor of the same shape the network uses in its place."""


class ApplyMask(nn.Module):
    """Multiply a layer's output by its unit mask, broadcast over the batch and spatial dims.

    A module (not an inline product) so that attribution methods which treat modules by type
    (Captum's DeepLift and LRP) can see and handle the mask application.
    """

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return x
        if is_stacked(mask):  # several tasks' masks in one forward (masking/stacked.py)
            return mask.apply(x)
        return x * mask.view(1, -1, *([1] * (x.dim() - 2)))


class Add(nn.Module):
    """Sum of two branches (a residual connection), as a module so LRP can split relevance."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class ActivationTap(nn.Identity):
    """Identity marking a layer's output h_l (after mask and nonlinearity).

    Attribution methods hook this module: its output is exactly ``activations[mask_key]``.
    """


class Backbone(nn.Module):
    """Base of all backbones: weighted-layer descriptors, optional HAT masker, task set-up.

    Subclasses set ``output_dim`` and ``weighted_layers`` and implement ``forward``.

    Activation taps (the contract attribution importance relies on): for every mask key the
    backbone owns one :class:`ActivationTap` in ``self.taps`` (an ``nn.ModuleDict`` keyed by mask
    key), applies it once per forward to h_l (after mask and nonlinearity), stores the tap's
    *output* as ``activations[mask_key]`` and uses only that output downstream. Every module in
    the forward path is used once per forward (one ReLU, dropout, pooling module per place) and
    masks are applied with :class:`ApplyMask`, so that DeepLift and LRP can treat each module.
    A backbone sets ``sequential_taps = True`` when, in eval mode, everything after tap l
    depends on the input only through tap l's output, row by row (a chain without skip
    connections); attribution then runs the layers after a tap only, on expanded rows.
    h_l goes through :meth:`activation` (identity unless a transform is installed) before the
    tap, so the tap output is what the network uses.
    A backbone sets ``per_sample_masks = True`` when its masker's masks reach the network only
    through :class:`ApplyMask` and every layer works row by row in eval mode: it can then run a
    batch under several tasks' masks in one forward (``masking/stacked.py``), as long as no
    other module depends on the task (per-task batch norms rule it out).

    Attributes:
        activation_transforms: optional per mask key, a function applied to h_l in training
            forwards (``Stage.TRAIN``) only. A plain dict, not a submodule: whatever is installed
            here (e.g. stochastic gates shaping an importance estimate) is never part of the
            backbone's ``state_dict`` or parameters. Empty by default.
    """

    output_dim: int
    weighted_layers: tuple[WeightedLayer, ...]
    masker: HATMasker | None
    sequential_taps: bool = False
    per_sample_masks: bool = False

    def activation_module(self, mask_key: str) -> nn.Module:
        """The tap module whose output is h_l of ``mask_key``."""
        taps = getattr(self, "taps", None)
        if not isinstance(taps, nn.ModuleDict) or mask_key not in taps:
            raise ValueError(
                f"backbone {type(self).__name__} has no activation tap for mask key "
                f"{mask_key!r}; taps exist for {list(taps) if taps is not None else []}"
            )
        return taps[mask_key]

    def __init__(self) -> None:
        super().__init__()
        self.activation_transforms: dict[str, ActivationTransform] = {}

    def activation(self, key: str, hidden: torch.Tensor, *, stage: Stage) -> torch.Tensor:
        """h_l of mask key ``key`` as the network uses it: through its transform when training."""
        transform = self.activation_transforms.get(key)
        if transform is None or stage is not Stage.TRAIN:
            return hidden
        return transform(hidden)

    def depends_on_task(self) -> bool:
        """Whether the forward's result depends on ``task_id``: some submodule is marked
        ``task_specific`` (HAT masks, per-task batch norms, per-task backbones)."""
        return any(getattr(module, "task_specific", False) for module in self.modules())

    def unit_counts(self) -> dict[str, int]:
        """Number of units per mask key, in forward order."""
        counts: dict[str, int] = {}
        for layer in self.weighted_layers:
            module = self.get_submodule(layer.name)
            counts.setdefault(layer.mask_key, _output_units(module))
        return counts

    def setup_task(self, task_id: int) -> None:
        """Prepare for training ``task_id`` (per-task batch norm, embedding re-initialisation)."""

    def layer_modules(self) -> list[tuple[WeightedLayer, nn.Module]]:
        """Every weighted layer with its module, in forward order."""
        return [(layer, self.get_submodule(layer.name)) for layer in self.weighted_layers]

    def forward(  # pragma: no cover - abstract
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> BackboneOutput:
        raise NotImplementedError


def _output_units(module: nn.Module) -> int:
    weight = getattr(module, "weight", None)
    if weight is None:
        raise TypeError(f"weighted layer {module!r} has no weight")
    return int(weight.shape[0])
