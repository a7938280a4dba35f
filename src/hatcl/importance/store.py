"""FG-AdaHAT's importance state: the per-task accumulator, task importances, summative importance.

All of it is buffers, so it travels in ``state_dict`` and loads with ``weights_only=True``. The
mask keys are only known once a model exists, so buffers are registered by :meth:`ensure_keys`
(at the start of a task) or created from an incoming state dict on load.

Buffers, per mask key ``k``:

- ``accumulator_<k>`` (units): the sum of the task's normalised step importances;
- ``tasks_<k>`` (tasks x units): ``I^tau`` of every finished task, rows in ``task_ids`` order;
- ``summative_<k>`` (units): the summative importance ``I^{<t+1}``;

and ``steps`` (0-dim, the accumulator's step count) and ``task_ids`` (int64). The accumulator is a
sum and a count, so summing both over processes (:meth:`accumulator_tensors`) and dividing
gives the same average as one process seeing every batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

_PREFIXES = ("accumulator_", "tasks_", "summative_")


class ImportanceStore(nn.Module):
    """Buffers of FG-AdaHAT's importance bookkeeping (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros(()))
        self.register_buffer("task_ids", torch.zeros(0, dtype=torch.long))

    @property
    def keys(self) -> tuple[str, ...]:
        """The mask keys with buffers, in registration order."""
        return tuple(n[len("summative_") :] for n in self._buffers if n.startswith("summative_"))

    def ensure_keys(self, unit_counts: Mapping[str, int], *, like: torch.Tensor) -> None:
        """Register zero buffers (device and floating dtype of ``like``) for new mask keys."""
        floating = {"device": like.device, "dtype": like.dtype}
        for key, units in unit_counts.items():
            if f"summative_{key}" in self._buffers:
                continue
            self.register_buffer(f"accumulator_{key}", torch.zeros(units, **floating))
            self.register_buffer(f"tasks_{key}", torch.zeros(0, units, **floating))
            self.register_buffer(f"summative_{key}", torch.zeros(units, **floating))
        self.steps = self.steps.to(**floating)
        self.task_ids = self.task_ids.to(like.device)

    # -- the per-task accumulator ---------------------------------------------------------------

    @torch.no_grad()
    def observe(
        self, values: Mapping[str, torch.Tensor], *, applied: torch.Tensor | None = None
    ) -> None:
        """Add one step's neuron-wise importance per key and count the step (no host sync).

        Args:
            values: per key the step's importance (cast to the accumulator's dtype: under mixed
                precision the accumulator stays float32).
            applied: ``None`` (the step counts) or a 0-dim bool tensor: when false (a step the
                grad scaler skipped) nothing is added and the step is not counted.
        """
        accumulators = [self._buffers[f"accumulator_{key}"] for key in values]
        added = [value.to(acc.dtype) for value, acc in zip(values.values(), accumulators)]
        if applied is not None:
            added = [torch.where(applied, value, torch.zeros_like(value)) for value in added]
        if accumulators:
            torch._foreach_add_(accumulators, added)
        self.steps.add_(1 if applied is None else applied.to(self.steps.dtype))

    def reset_accumulator(self) -> None:
        """Zero the accumulator and its step count (start of a task)."""
        for key in self.keys:
            self._buffers[f"accumulator_{key}"].zero_()
        self.steps.zero_()

    def accumulator_tensors(self) -> list[torch.Tensor]:
        """The accumulator of every key and the step count: what a sum over processes reduces."""
        return [*(self._buffers[f"accumulator_{key}"] for key in self.keys), self.steps]

    def task_average(self, *, base: float) -> dict[str, torch.Tensor]:
        """``accumulator / steps + base`` per key (``base`` alone if no step was observed)."""
        steps = self.steps.clamp_min(1.0)
        return {key: self._buffers[f"accumulator_{key}"] / steps + base for key in self.keys}

    # -- finished tasks ---------------------------------------------------------------------------

    @torch.no_grad()
    def store_task(self, *, task_id: int, importances: Mapping[str, torch.Tensor]) -> None:
        """Store (or replace) ``I^t`` of ``task_id`` for every key."""
        hits = (self.task_ids == task_id).nonzero()
        row = int(hits[0, 0]) if len(hits) else None
        if row is None:
            self.task_ids = torch.cat([self.task_ids, self.task_ids.new_tensor([task_id])])
        for key in self.keys:
            stack = self._buffers[f"tasks_{key}"]
            value = importances[key].detach().to(stack).reshape(1, -1)
            if row is None:
                stack = torch.cat([stack, value])
            else:
                stack = stack.index_copy(0, torch.tensor([row], device=stack.device), value)
            self._buffers[f"tasks_{key}"] = stack

    def task_importances(self) -> dict[str, list[torch.Tensor]]:
        """Per key, ``[I^1, ..., I^t]`` ordered by task id."""
        order = torch.argsort(self.task_ids).tolist()
        return {key: [self._buffers[f"tasks_{key}"][i] for i in order] for key in self.keys}

    def task_importance(self, task_id: int) -> dict[str, torch.Tensor]:
        """``I^t`` of one stored task per key."""
        hits = (self.task_ids == task_id).nonzero()
        if not len(hits):
            raise ValueError(f"no importance stored for task {task_id}")
        row = int(hits[0, 0])
        return {key: self._buffers[f"tasks_{key}"][row] for key in self.keys}

    def summative(self) -> dict[str, torch.Tensor]:
        """The summative importance per key."""
        return {key: self._buffers[f"summative_{key}"] for key in self.keys}

    @torch.no_grad()
    def set_summative(self, values: Mapping[str, torch.Tensor]) -> None:
        """Replace the summative importance of every key."""
        for key in self.keys:
            self._buffers[f"summative_{key}"].copy_(values[key])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name, incoming in state_dict.items():
            if not name.startswith(prefix):
                continue
            local = name[len(prefix) :]
            if "." in local:
                continue
            buffer = self._buffers.get(local)
            known = local in ("steps", "task_ids") or local.startswith(_PREFIXES)
            if known and (buffer is None or buffer.shape != incoming.shape):
                device = buffer.device if buffer is not None else self.steps.device
                self._buffers[local] = torch.empty_like(incoming, device=device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
