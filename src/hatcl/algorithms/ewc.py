"""EWC: elastic weight consolidation (Kirkpatrick et al., PNAS 2017) and its online variant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hatcl.algorithms.base import Algorithm, StepContext, TaskView
from hatcl.algorithms.fisher import diagonal_fisher
from hatcl.algorithms.registries import EWC_MODES
from hatcl.backbones.model import ContinualModel
from hatcl.functional.ewc import ewc_penalty, merge_online, merge_separate
from hatcl.validation import check_int, check_number

_FISHER = "fisher_"
_ANCHOR = "anchor_"


@dataclass(frozen=True)
class EWCMode:
    """How a finished task's Fisher joins the consolidated penalty (an ``EWC_MODES`` entry)."""

    merge: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    keeps_constant: bool
    uses_gamma: bool


SEPARATE = EWCMode(merge=merge_separate, keeps_constant=True, uses_gamma=False)
ONLINE = EWCMode(merge=merge_online, keeps_constant=False, uses_gamma=True)


class EWC(Algorithm):
    """A quadratic penalty pulling parameters towards earlier tasks' optima, weighted by Fisher.

    After each task the diagonal (empirical) Fisher information ``F_i = E[(d log p(y|x) / d
    theta_i)**2]`` is estimated from per-sample gradients on the task's training data (true
    labels), and the loss of later tasks gets ``ewc_lambda / 2 * sum_i F_i (theta_i -
    theta*_i)**2`` (eq. 3). Every parameter that received a Fisher (backbone, and the heads
    trained so far) is penalised; heads of later tasks are not.

    Args:
        ewc_lambda: the penalty weight lambda (``>= 0``).
        mode: ``separate`` (one penalty per task, summed: the paper) or ``online`` (Schwarz et
            al. 2018: ``F <- gamma F + F_t``, anchored at the latest task's parameters).
        gamma: the Fisher decay of ``online`` (in ``[0, 1]``); ``separate`` requires 1.
        fisher_samples: training samples per task used for the Fisher (a seeded random subset);
            ``None`` uses the whole training split.
        fisher_batch_size: samples per vectorised per-sample-gradient chunk (memory only).
    """

    def __init__(
        self,
        *,
        ewc_lambda: float = 1000.0,
        mode: str = "separate",
        gamma: float = 1.0,
        fisher_samples: int | None = None,
        fisher_batch_size: int = 128,
    ) -> None:
        super().__init__()
        self.ewc_lambda = check_number(ewc_lambda, parameter="ewc_lambda", low=0.0)
        self.mode = EWC_MODES.validate(mode, parameter="mode")
        self.gamma = check_number(gamma, parameter="gamma", low=0.0, high=1.0)
        self._mode: EWCMode = EWC_MODES.get(self.mode)
        if not self._mode.uses_gamma and self.gamma != 1.0:
            raise ValueError(f"gamma is used by mode 'online' only; mode {mode!r} got {gamma}")
        self.fisher_samples = (
            None
            if fisher_samples is None
            else check_int(fisher_samples, parameter="fisher_samples", low=1)
        )
        self.fisher_batch_size = check_int(fisher_batch_size, parameter="fisher_batch_size", low=1)
        self.register_buffer("offset", torch.zeros(()))

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """``{"ewc": penalty}`` once a task has been consolidated."""
        parameters, anchors, fishers = [], [], []
        for name, parameter in context.model.named_parameters():
            fisher = self._buffers.get(_FISHER + _safe(name))
            if fisher is not None:
                parameters.append(parameter)
                anchors.append(self._buffers[_ANCHOR + _safe(name)])
                fishers.append(fisher)
        if not parameters:
            return {}
        penalty = ewc_penalty(
            parameters,
            anchors=anchors,
            fishers=fishers,
            offset=self.offset,
            ewc_lambda=self.ewc_lambda,
        )
        return {"ewc": penalty}

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskView) -> None:
        """Estimate the task's Fisher and merge it (with its optimum) into the penalty."""
        inputs, targets = _fisher_subset(task_data, samples=self.fisher_samples)
        targets = model.heads.training_targets(targets, task_id=task_id)  # global under cil
        fishers = diagonal_fisher(
            model,
            inputs=inputs,
            targets=targets,
            task_id=task_id,
            batch_size=self.fisher_batch_size,
        )
        offset = torch.zeros_like(self.offset)
        for name, parameter in model.named_parameters():
            if name not in fishers:
                continue
            new_anchor = parameter.detach().clone()
            old_fisher = self._buffers.get(_FISHER + _safe(name))
            old_anchor = self._buffers.get(_ANCHOR + _safe(name))
            if old_fisher is None:
                old_fisher = torch.zeros_like(new_anchor)
                old_anchor = torch.zeros_like(new_anchor)
            merged, anchor, added = self._mode.merge(
                fisher=old_fisher,
                anchor=old_anchor,
                new_fisher=fishers[name],
                new_anchor=new_anchor,
                gamma=self.gamma,
            )
            self.register_buffer(_FISHER + _safe(name), merged)
            self.register_buffer(_ANCHOR + _safe(name), anchor)
            offset = offset + added.to(offset)
        # separate: the constants accumulate; online: every merge re-anchors (constant 0)
        self.offset = offset + self.offset if self._mode.keeps_constant else offset

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Fisher and anchor buffers appear after the first task: create them before loading.
        for key, value in state_dict.items():
            name = key[len(prefix) :]
            if key.startswith(prefix) and name.startswith((_FISHER, _ANCHOR)) and "." not in name:
                if name not in self._buffers:
                    self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def consolidated(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per parameter name: its consolidated Fisher and anchor."""
        found = {}
        for key, fisher in self._buffers.items():
            if key.startswith(_FISHER):
                safe = key[len(_FISHER) :]
                found[safe.replace("-", ".")] = (fisher, self._buffers[_ANCHOR + safe])
        return found


def _fisher_subset(
    task_data: TaskView, *, samples: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = task_data.train.x, task_data.train.y
    if samples is None or samples >= len(y):
        return x, y
    generator = torch.Generator().manual_seed(task_data.task_id)
    chosen = torch.randperm(len(y), generator=generator)[:samples]
    return x[chosen], y[chosen]


def _safe(name: str) -> str:
    return name.replace(".", "-")
