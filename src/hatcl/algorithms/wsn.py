"""WSN: winning subnetworks (Kang et al., ICML 2022, "Forget-free continual learning with
winning subnetworks"), on any backbone.

Every weight and bias of the backbone's linear and convolutional layers is parametrised as
``W * m`` (``torch.nn.utils.parametrize``): while task t trains, ``m`` is the top-c mask of a
learned score tensor (straight-through); once t is finished, ``m_t`` is stored and every later
forward for task t uses it. Weights in the union ``M_{t-1}`` of earlier masks get no gradient
and are restored after each optimizer step (so weight decay cannot move them either). Every
other parameter (heads, per-task batch norms, a shared head) is frozen once a finished task
used it. Earlier tasks' outputs therefore never change (BWT exactly 0).

WSN is a per-task network: under ``head=cil``/``dil`` each task trains on its own output block
and labels as under ``til``, and at test time the task-agnostic evaluator runs every test batch
under each seen task's stored mask (the forward's ``task_id`` selects ``m_t``) and predicts the
task first.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from hatcl.algorithms.base import Algorithm, StepContext, TaskView
from hatcl.backbones.model import ContinualModel
from hatcl.functional.wsn import masked_weight, straight_through_weight, top_fraction_mask
from hatcl.validation import check_number

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class _ForwardTask:
    """The task id of the backbone's current forward (set by a forward pre-hook)."""

    task_id = 1


class WinningMask(nn.Module):
    """The parametrisation ``W -> W * m`` of one tensor, with its scores and per-task masks.

    Args:
        like: the parametrised tensor (shape, dtype, device).
        fraction: c, the fraction of entries each task's mask keeps.
        fan_in: the layer's fan-in (scales the scores' initialisation like the weights').
        forward_task: where the current forward's task id is read.
    """

    def __init__(
        self, *, like: torch.Tensor, fraction: float, fan_in: int, forward_task: _ForwardTask
    ) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(max(fan_in, 1))
        self.score = nn.Parameter(torch.empty_like(like).uniform_(-bound, bound))
        self.register_buffer(
            "masks", torch.zeros((0, *like.shape), dtype=torch.bool, device=like.device)
        )
        self.fraction = fraction
        self._forward_task = forward_task

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        task_id = self._forward_task.task_id
        if task_id <= self.masks.shape[0]:
            return masked_weight(weight, self.masks[task_id - 1])
        mask = top_fraction_mask(self.score, self.fraction)
        return straight_through_weight(weight, self.score, mask)

    def current_mask(self) -> torch.Tensor:
        """The mask the scores select now (the training task's ``m_t``)."""
        return top_fraction_mask(self.score, self.fraction)

    def union(self) -> torch.Tensor:
        """``M``: the union of the stored tasks' masks (all False before the first)."""
        if self.masks.shape[0] == 0:
            return torch.zeros_like(self.score, dtype=torch.bool)
        return self.masks.any(0)

    def finish_task(self, task_id: int) -> None:
        """Store ``m_task_id`` (tasks without a stored mask before it keep none)."""
        missing = task_id - 1 - self.masks.shape[0]
        rows = [self.masks]
        if missing > 0:
            rows.append(self.masks.new_zeros((missing, *self.score.shape)))
        rows.append(self.current_mask().unsqueeze(0))
        self.masks = torch.cat(rows)[:task_id]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "masks")
        if saved is not None:
            self.masks = torch.empty_like(saved, device=self.masks.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class WSN(Algorithm):
    """Per-task top-c weight masks from learned scores; earlier tasks' weights frozen.

    Args:
        mask_fraction: c, the fraction of each layer's weights (and biases) a task's mask keeps.
    """

    per_task_network = True

    def __init__(self, *, mask_fraction: float = 0.5) -> None:
        super().__init__()
        self.mask_fraction = check_number(
            mask_fraction, parameter="mask_fraction", low=0.0, high=1.0, low_inclusive=False
        )
        self.register_buffer("frozen_names", torch.zeros(0, dtype=torch.uint8))
        self._forward_task = _ForwardTask()
        self._frozen: set[str] = set()
        self._used: set[str] = set()  # unmasked parameters the current task's steps trained
        self._snapshot: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    def configure_model(self, *, model: ContinualModel) -> None:
        """Parametrise every linear and convolutional layer of the backbone as ``W * m``."""
        _refuse_shared_batch_norm(model.backbone)
        for module in list(model.backbone.modules()):
            if not isinstance(module, _WEIGHTED):
                continue
            fan_in = module.weight[0].numel()
            for name in ("weight", "bias"):
                tensor = getattr(module, name)
                if tensor is None:
                    continue
                mask = WinningMask(
                    like=tensor.detach(),
                    fraction=self.mask_fraction,
                    fan_in=fan_in,
                    forward_task=self._forward_task,
                )
                parametrize.register_parametrization(module, name, mask)
        model.backbone.register_forward_pre_hook(self._read_task_id, with_kwargs=True)

    def _read_task_id(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._forward_task.task_id = int(kwargs.get("task_id", self._forward_task.task_id))

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Forget the last task's snapshot (taken again at the task's first step)."""
        self._snapshot = None
        self._used = set()

    def adjust_gradients(self, context: StepContext) -> None:
        """Zero the gradient of every weight an earlier task uses (``(1 - M_{t-1})``)."""
        if self._snapshot is None:
            self._snapshot = self._take_snapshot(context.model)
        parameters = dict(context.model.named_parameters())
        for name, parameter in parameters.items():  # grads may be cleared before the task ends
            if parameter.grad is not None and not _is_masked_part(name):
                self._used.add(name)
        with torch.no_grad():
            for name, (frozen, _) in self._snapshot.items():
                grad = parameters[name].grad
                if grad is not None:
                    grad.mul_(~frozen)

    def after_optimizer_step(self, context: StepContext) -> None:
        """Put the frozen weights back exactly (an optimizer's weight decay may move them)."""
        if self._snapshot is None:
            return
        parameters = dict(context.model.named_parameters())
        with torch.no_grad():
            for name, (frozen, values) in self._snapshot.items():
                parameter = parameters[name]
                parameter.copy_(torch.where(frozen, values, parameter))

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskView) -> None:
        """Store ``m_t`` in every layer; freeze the other parameters the task used."""
        for mask in _masks(model):
            mask.finish_task(task_id)
        for name, parameter in model.named_parameters():
            if not _is_masked_part(name) and parameter.grad is not None:
                self._frozen.add(name)
        self._frozen |= self._used
        self._used = set()
        encoded = "\n".join(sorted(self._frozen)).encode()
        self.frozen_names = torch.tensor(list(encoded), dtype=torch.uint8)
        self._snapshot = None

    def task_summary(self, *, task_id: int, model: ContinualModel) -> dict[str, object]:
        """Fractions of the backbone's masked entries in ``m_t``, in ``M_t``, and reused."""
        kept = union = reused = total = 0
        for mask in _masks(model):
            if mask.masks.shape[0] < task_id:
                continue
            current = mask.masks[task_id - 1]
            earlier = mask.masks[: task_id - 1].any(0)
            kept += int(current.sum())
            union += int(mask.masks[:task_id].any(0).sum())
            reused += int((current & earlier).sum())
            total += current.numel()
        return {
            "wsn": {
                "mask_fraction": kept / max(total, 1),
                "union_fraction": union / max(total, 1),
                "reused_fraction": reused / max(kept, 1),
            }
        }

    def _take_snapshot(self, model: ContinualModel) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        snapshot = {}
        for name, parameter in model.named_parameters():
            if name.endswith(".original"):
                owner = model.get_submodule(name[: -len(".original")])
                frozen = owner[0].union()
            elif name in self._frozen:
                frozen = torch.ones_like(parameter, dtype=torch.bool)
            else:
                continue
            snapshot[name] = (frozen, parameter.detach().clone())
        return snapshot

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "frozen_names")
        if saved is not None:
            self.frozen_names = torch.empty_like(saved)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        text = bytes(self.frozen_names.cpu().tolist()).decode()
        self._frozen = set(text.split("\n")) if text else set()


def _masks(model: ContinualModel) -> list[WinningMask]:
    return [m for m in model.backbone.modules() if isinstance(m, WinningMask)]


def _is_masked_part(name: str) -> bool:
    return ".parametrizations." in name


def _refuse_shared_batch_norm(backbone: nn.Module) -> None:
    """WSN keeps earlier tasks exact only if no normalisation statistics are shared."""
    per_task = [n for n, m in backbone.named_modules() if getattr(m, "task_specific", False)]
    for name, module in backbone.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            name.startswith(prefix + ".") for prefix in per_task if prefix
        ):
            raise ValueError(
                f"algorithm wsn needs per-task batch norms, but backbone layer {name!r} is a "
                "batch norm shared by all tasks (its running statistics would change earlier "
                "tasks' outputs): use backbone.batch_norm=independent or none"
            )
