"""The contract between FG-AdaHAT and its importance measures."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from hatcl.backbones.model import ContinualModel, ModelOutput
from hatcl.backbones.step_context import StepContext


class ImportancePlugin(Protocol):
    """Task-scoped machinery a measure adds to training (e.g. gates in the forward, a loss term).

    FG-AdaHAT drives it: ``on_task_start`` after its own task start (before the task's optimizer
    is built), ``parameters`` joins the optimised parameters, ``loss_terms`` joins the loss of
    every step, ``on_task_end`` before its own task end. Whatever it installs must be gone after
    ``on_task_end``: it shapes the importance estimate, it is not part of the stored model.
    """

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Install the task's machinery on ``model``."""

    def parameters(self) -> Iterable[nn.Parameter]:
        """The plugin's parameters, optimised by the task's optimizer."""

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """Extra loss terms of the step, by name (each a 0-dim tensor)."""

    def on_task_end(self, *, task_id: int, model: ContinualModel) -> None:
        """Remove everything ``on_task_start`` installed."""


@dataclass(frozen=True)
class ImportanceContext:
    """What a measure may read at one training step, after the optimizer step.

    docs/spec.md §3, step 9.

    Attributes:
        model: the model with its post-step weights; ``.grad`` holds the gradients as applied
            (after adjustment).
        task_id: the task being trained (selects the head and, for attributions, the target).
        inputs: the step's input batch.
        targets: the step's labels (the attribution target of each sample).
        scale: the step's annealed mask scale s.
        output: the step's forward output (training masks and activations h_l per mask key).
        plugin: the measure's :class:`ImportancePlugin` (set up for the task), if it has one.
        step: the step's index within the task; seeds a measure's own random draws (which
            never touch the training RNG stream).
    """

    model: ContinualModel
    task_id: int
    inputs: torch.Tensor
    targets: torch.Tensor
    scale: float
    output: ModelOutput
    plugin: ImportancePlugin | None = None
    step: int = 0

    @classmethod
    def from_step(
        cls, context: StepContext, *, step: int, plugin: ImportancePlugin | None = None
    ) -> ImportanceContext:
        """The importance context of a training step (its model, batch, scale and output)."""
        return cls(
            model=context.model,
            task_id=context.task_id,
            inputs=context.inputs,
            targets=context.targets,
            scale=context.scale,
            output=context.output,
            plugin=plugin,
            step=step,
        )


@dataclass(frozen=True)
class ImportanceMeasure:
    """A neuron-wise importance measure: raw importance u_l for every mask key at once.

    Attributes:
        compute: ``compute(context) -> {mask_key: tensor of shape (units,)}``, detached,
            finite and non-negative; must leave gradients, modes and RNG state untouched.
        plugin: optional factory of the measure's :class:`ImportancePlugin`, called once per
            algorithm with the keyword options named in ``plugin_options``.
        plugin_options: names of FG-AdaHAT parameters passed to ``plugin`` (same names).
    """

    compute: Callable[[ImportanceContext], Mapping[str, torch.Tensor]]
    plugin: Callable[..., ImportancePlugin] | None = None
    plugin_options: tuple[str, ...] = ()
