"""The contract between FG-AdaHAT and its importance measures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from hatcl.backbones.model import ContinualModel, ModelOutput


@dataclass(frozen=True)
class ImportanceContext:
    """What a measure may read at one training step, after the optimizer step (spec §3, step 9).

    Attributes:
        model: the model with its post-step weights; ``.grad`` holds the gradients as applied
            (after adjustment).
        task_id: the task being trained (selects the head and, for attributions, the target).
        inputs: the step's input batch.
        targets: the step's labels (the attribution target of each sample).
        scale: the step's annealed mask scale s.
        output: the step's forward output (training masks and activations h_l per mask key).
        step: the step's index within the task; seeds a measure's own random draws (which
            never touch the training RNG stream).
    """

    model: ContinualModel
    task_id: int
    inputs: torch.Tensor
    targets: torch.Tensor
    scale: float
    output: ModelOutput
    step: int = 0


@dataclass(frozen=True)
class ImportanceMeasure:
    """A neuron-wise importance measure: raw importance u_l for every mask key at once.

    Attributes:
        compute: ``compute(context) -> {mask_key: tensor of shape (units,)}``, detached,
            finite and non-negative; must leave gradients, modes and RNG state untouched.
        needs_gradients: reads parameter gradients.
        needs_activations: reads the step's activations.
    """

    compute: Callable[[ImportanceContext], Mapping[str, torch.Tensor]]
    needs_gradients: bool = False
    needs_activations: bool = False
