"""Importance type ``stochastic_gates``: L0 gates on every layer's units during a task.

During each task every mask key's units pass through a fresh
:class:`hatcl.gates.GaussianStochasticGates` (one gate per unit; one gate per channel for conv
activations) applied to h_l, after the HAT mask and the nonlinearity, in training forwards only.
The gates' ``l0_reg`` joins the loss and their mean ``mu`` is optimised by the task's optimizer
together with the network; the step's raw importance of a layer is its gates' active
probabilities ``Phi(mu / std)``: units the task needs keep their gates open against the
regulariser. At task end the gates are removed: they shape the importance estimate and are not
part of the stored model (nothing of them in any ``state_dict``).

The gates are installed through :attr:`hatcl.backbones.base.Backbone.activation_transforms`, so
any backbone that passes its h_l through :meth:`~hatcl.backbones.base.Backbone.activation`
supports this measure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial

import torch
from torch import nn

from hatcl.backbones.base import Backbone
from hatcl.backbones.model import ContinualModel
from hatcl.gates.gaussian import GaussianStochasticGates
from hatcl.importance.base import ImportanceContext, ImportanceMeasure
from hatcl.importance.registry import STOCHASTIC_GATES_OPTIONS
from hatcl.validation import check_finite

DEFAULT_REG_WEIGHT = 0.001
"""Default ``stochastic_gates_reg_weight``: factor of the summed active probabilities."""

DEFAULT_STD = 0.5
"""Default ``stochastic_gates_std``: the gates' noise standard deviation."""

LOSS_TERM = "stochastic_gates_reg"


class StochasticGatesPlugin:
    """Installs, trains and removes one Gaussian gate module per mask key (an ImportancePlugin).

    Args:
        stochastic_gates_reg_weight: ``reg_weight`` of every gate module (>= 0); the loss term
            is ``reg_weight * sum over all units of Phi(mu / std)``.
        stochastic_gates_std: noise standard deviation of the gates (> 0).
    """

    def __init__(
        self,
        *,
        stochastic_gates_reg_weight: float = DEFAULT_REG_WEIGHT,
        stochastic_gates_std: float = DEFAULT_STD,
    ) -> None:
        self.reg_weight = check_finite(
            stochastic_gates_reg_weight, parameter="stochastic_gates_reg_weight"
        )
        self.std = check_finite(
            stochastic_gates_std, parameter="stochastic_gates_std", positive=True
        )
        self.gates: dict[str, GaussianStochasticGates] = {}
        self._backbone: Backbone | None = None
        self._regs: dict[str, torch.Tensor] = {}

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Create fresh gates for every mask key and install them on the backbone."""
        self._remove()
        backbone = model.backbone
        taken = sorted(set(backbone.activation_transforms) & set(backbone.unit_counts()))
        if taken:
            raise ValueError(
                f"the stochastic_gates importance needs the activation transforms of mask keys "
                f"{taken}, but something else has installed transforms there"
            )
        like = next(model.parameters())  # gates take the model's device and dtype
        for key, (units, spatial_dims) in _unit_layouts(backbone).items():
            mask = None
            if spatial_dims:
                mask = torch.arange(units, device=like.device).reshape(units, *([1] * spatial_dims))
            self.gates[key] = GaussianStochasticGates(
                units, mask=mask, reg_weight=self.reg_weight, std=self.std
            ).to(device=like.device, dtype=like.dtype)
            backbone.activation_transforms[key] = partial(self._gate, key)
        self._backbone = backbone

    def parameters(self) -> Iterator[nn.Parameter]:
        """The gates' means ``mu``, in mask-key order."""
        for gates in self.gates.values():
            yield from gates.parameters()

    def loss_terms(self, context: object) -> dict[str, torch.Tensor]:
        """The summed ``l0_reg`` of the step's training forward, as ``stochastic_gates_reg``.

        Raises:
            TypeError: if the forward did not pass some mask key's h_l through the gates (a
                backbone that does not call ``Backbone.activation``).
        """
        if not self.gates:
            return {}
        missing = [key for key in self.gates if key not in self._regs]
        if missing:
            raise TypeError(
                f"backbone {type(self._backbone).__name__} did not pass h_l of mask keys "
                f"{missing} through Backbone.activation, which the stochastic_gates importance "
                f"needs; choose another importance_type for this backbone"
            )
        regs, self._regs = self._regs, {}
        return {LOSS_TERM: torch.stack([regs[key] for key in self.gates]).sum()}

    def on_task_end(self, *, task_id: int, model: ContinualModel) -> None:
        """Remove the gates from the backbone and forget them."""
        self._remove()

    def active_probs(self) -> dict[str, torch.Tensor]:
        """Detached active probabilities ``Phi(mu / std)`` per mask key, shape (units,)."""
        return {key: gates.get_gate_active_probs() for key, gates in self.gates.items()}

    def _gate(self, key: str, hidden: torch.Tensor) -> torch.Tensor:
        gates = self.gates[key]
        if gates.mu.device != hidden.device:  # the model moved after task start
            gates.to(hidden.device)
        gated, l0_reg = gates(hidden)
        self._regs[key] = l0_reg
        return gated

    def _remove(self) -> None:
        if self._backbone is not None:
            for key in self.gates:
                self._backbone.activation_transforms.pop(key, None)
        self._backbone = None
        self.gates = {}
        self._regs = {}


def _unit_layouts(backbone: Backbone) -> dict[str, tuple[int, int]]:
    """Per mask key: units and the number of spatial dims of h_l (0 for linear layers)."""
    counts = backbone.unit_counts()
    layouts: dict[str, tuple[int, int]] = {}
    for layer, module in backbone.layer_modules():
        layouts.setdefault(layer.mask_key, (counts[layer.mask_key], module.weight.dim() - 2))
    return layouts


def _compute(context: ImportanceContext) -> Mapping[str, torch.Tensor]:
    plugin = context.plugin
    if not isinstance(plugin, StochasticGatesPlugin) or not plugin.gates:
        raise ValueError(
            "importance_type 'stochastic_gates' reads the gates of its plugin: pass the "
            "StochasticGatesPlugin set up for the task as ImportanceContext.plugin "
            f"(got {type(plugin).__name__})"
        )
    return plugin.active_probs()


STOCHASTIC_GATES = ImportanceMeasure(
    compute=_compute,
    plugin=StochasticGatesPlugin,
    plugin_options=STOCHASTIC_GATES_OPTIONS,
)
