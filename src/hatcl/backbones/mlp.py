"""Fully connected backbone, HAT-masked or plain."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hatcl.backbones.base import ActivationTap, ApplyMask, Backbone, BackboneOutput, WeightedLayer
from hatcl.backbones.registries import BATCH_NORM_MODES
from hatcl.masking.masker import HATMasker
from hatcl.masking.stage import Stage
from hatcl.validation import check_fraction, check_positive_ints


class MLPBackbone(Backbone):
    """Linear -> batch norm -> HAT mask -> ReLU -> activation tap -> dropout, per hidden layer.

    Args:
        input_shape: shape of one input sample (flattened into the first layer).
        hidden_dims: units of each hidden layer; the last is ``output_dim``.
        dropout: dropout probability after each hidden layer.
        batch_norm: ``none``, ``shared`` or ``independent`` (one per task).
        masked: whether the layers carry HAT masks (HAT family) or not (baselines).
    """

    sequential_taps = True
    per_sample_masks = True

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        hidden_dims: Sequence[int] = (256, 100, 64),
        dropout: float = 0.0,
        batch_norm: str = "none",
        masked: bool = True,
    ) -> None:
        super().__init__()
        hidden_dims = check_positive_ints(hidden_dims, parameter="backbone.hidden_dims")
        input_dim = math.prod(check_positive_ints(input_shape, parameter="input_shape"))
        check_fraction(dropout, parameter="backbone.dropout")
        norm_class = BATCH_NORM_MODES.resolve(batch_norm)
        dims = (input_dim, *hidden_dims)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(norm_class(num_features=units) for units in hidden_dims)
        self.keys = tuple(f"fc{index + 1}" for index in range(len(hidden_dims)))
        self.apply_masks = nn.ModuleList(ApplyMask() for _ in hidden_dims)
        self.relus = nn.ModuleList(nn.ReLU() for _ in hidden_dims)
        self.taps = nn.ModuleDict({key: ActivationTap() for key in self.keys})
        self.dropouts = nn.ModuleList(nn.Dropout(dropout) for _ in hidden_dims)
        self.weighted_layers = tuple(
            WeightedLayer(name=f"linears.{i}", mask_key=key, input_mask_key=_previous(self.keys, i))
            for i, key in enumerate(self.keys)
        )
        self.output_dim = hidden_dims[-1]
        units = dict(zip(self.keys, hidden_dims))
        self.masker = HATMasker(unit_counts=units) if masked else None

    def setup_task(self, task_id: int) -> None:
        """Create per-task batch norms where configured."""
        for norm in self.norms:
            norm.setup_task(task_id)

    def forward(
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> BackboneOutput:
        """Run the layers with the masks of ``stage`` (none when unmasked)."""
        masks = self.masker.masks(stage=stage, task_id=task_id, scale=scale) if self.masker else {}
        activations: dict[str, torch.Tensor] = {}
        hidden = x.flatten(1)
        for index, key in enumerate(self.keys):
            pre = self.norms[index](self.linears[index](hidden), task_id=task_id)
            pre = self.apply_masks[index](pre, mask=masks.get(key))
            hidden = self.taps[key](self.activation(key, self.relus[index](pre), stage=stage))
            activations[key] = hidden
            hidden = self.dropouts[index](hidden)
        return BackboneOutput(features=hidden, masks=masks, activations=activations)


def _previous(keys: tuple[str, ...], index: int) -> str | None:
    return keys[index - 1] if index > 0 else None
