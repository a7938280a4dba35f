"""Rehearsal baselines on one reservoir memory: ER, DER and DER++.

ER: Chaudhry et al. 2019, "On tiny episodic memories in continual learning". DER and DER++:
Buzzega et al., NeurIPS 2020, "Dark experience for general continual learning: a strong,
simple baseline". Every step adds the replay terms (from the second task on), then offers the
step's batch to the memory. The replayed logits are computed by :meth:`Replay.replay_logits`:
``til``, each sample through its own task's head; ``dil``, the shared head; ``cil``, the logits
of all classes seen so far (one forward of the heads), scored against the global labels the
memory stores (a sample's label is its training target, global under ``cil``). DER's stored
logits are narrower than later ones under ``cil``: its MSE compares only their stored columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.algorithms.memory import MemoryBatch, ReservoirMemory
from hatcl.backbones.model import ContinualModel
from hatcl.functional.replay import covered_mse, own_head_logits
from hatcl.heads.heads import ClassIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.validation import check_int, check_number


class Replay(Algorithm):
    """The shared shell: a reservoir memory, replay draws and the insertion after each step.

    Args:
        buffer_size: M, the memory's capacity in samples.
        replay_batch_size: samples per replay draw (``None``: the current batch's size).
        store_logits: keep each sample's logits at insertion (DER, DER++).
    """

    def __init__(
        self, *, buffer_size: int, replay_batch_size: int | None, store_logits: bool
    ) -> None:
        super().__init__()
        self.buffer_size = check_int(buffer_size, parameter="buffer_size", low=1)
        self.replay_batch_size = (
            None
            if replay_batch_size is None
            else check_int(replay_batch_size, parameter="replay_batch_size", low=1)
        )
        self.memory = ReservoirMemory(capacity=self.buffer_size, store_logits=store_logits)
        self._heads: tuple[int, ...] = ()
        self._head_index: dict[int, int] = {}
        self._task_id = 1
        self._lookup = torch.zeros(1, dtype=torch.long)
        self._raw_inputs: torch.Tensor | None = None

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Record the heads replayed samples go through (those of tasks 1..task_id: the memory
        also holds samples of the current task, inserted after its earlier steps)."""
        self._task_id = task_id
        heads: dict[int, int] = {}
        self._head_index = {}
        for old in range(1, task_id + 1):
            key = id(model.heads.head(old))
            heads.setdefault(key, old)
            self._head_index[old] = list(heads).index(key)
        self._heads = tuple(heads.values())
        lookup = torch.zeros(task_id + 1, dtype=torch.long)
        for old, index in self._head_index.items():
            lookup[old] = index
        self._lookup = lookup

    def augment_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Augment the training batch; the un-augmented one is what the memory stores."""
        self._raw_inputs = inputs
        return super().augment_inputs(inputs)

    def replaying(self) -> bool:
        """Whether this step replays: from the second task on."""
        return self._task_id > 1

    def draw(self, context: StepContext) -> MemoryBatch:
        """A replay batch (augmented like training batches)."""
        count = self.replay_batch_size or context.inputs.shape[0]
        batch = self.memory.draw(count)
        inputs = self.apply_augmentation(batch.inputs.to(context.inputs.dtype))
        return MemoryBatch(
            inputs=inputs, labels=batch.labels, task_ids=batch.task_ids, logits=batch.logits
        )

    def replay_logits(self, model: ContinualModel, batch: MemoryBatch) -> torch.Tensor:
        """Logits of the replayed samples, each from its own task's head (``-inf`` padded).

        Under ``cil`` (a shared network's class-incremental heads) the logits of all classes
        seen so far, the columns the memory's global labels index.
        """
        index = self._lookup.to(batch.task_ids.device)[batch.task_ids]
        if model.backbone.depends_on_task():
            return self._grouped_logits(model, batch, index)
        features = model.backbone(
            batch.inputs, task_id=self._task_id, stage=Stage.TRAIN, scale=None
        ).features
        if _all_seen_classes(model):  # cil: every sample over all seen classes, labels global
            return model.heads(features, task_id=self._task_id)
        per_head = [model.heads(features, task_id=task_id) for task_id in self._heads]
        if len(per_head) == 1:
            return per_head[0]
        return own_head_logits(per_head, index)

    def _grouped_logits(
        self, model: ContinualModel, batch: MemoryBatch, index: torch.Tensor
    ) -> torch.Tensor:
        # a task-dependent backbone (per-task batch norms) runs each task's samples as a group;
        # selecting the groups reads their sizes on the host (this case only)
        per_group, order = [], []
        for position, task_id in enumerate(self._heads):
            chosen = torch.nonzero(index == position).squeeze(1)
            inputs = batch.inputs[chosen]
            per_group.append(model(inputs, task_id=task_id, stage=Stage.TRAIN).logits)
            order.append(chosen)
        width = max(logits.shape[1] for logits in per_group)
        padded = [F.pad(g, (0, width - g.shape[1]), value=float("-inf")) for g in per_group]
        inverse = torch.argsort(torch.cat(order))
        return torch.cat(padded)[inverse]

    def after_optimizer_step(self, context: StepContext) -> None:
        """Offer the step's (un-augmented) batch to the memory, labelled with the step's training
        targets (global labels under ``cil``) and, for DER, the step's logits."""
        raw, self._raw_inputs = self._raw_inputs, None
        if raw is None or raw.shape != context.inputs.shape:
            raw = context.inputs
        task_ids = context.task_ids
        if task_ids is None:
            task_ids = torch.full_like(context.targets, context.task_id, dtype=torch.long)
        self.memory.insert(
            inputs=raw,
            labels=context.targets,
            task_ids=task_ids,
            logits=context.output.logits if self.memory.store_logits else None,
            keep=context.gradients_finite,
        )

    def task_summary(self, *, task_id: int, model: ContinualModel) -> dict[str, object]:
        """The memory after the task: samples seen, fill and per-task composition."""
        return {"memory": self.memory.composition()}


class ER(Replay):
    """Experience replay: CE(current batch) + CE(a replay batch drawn uniformly from memory).

    Args:
        buffer_size: M, the memory's capacity in samples.
        replay_batch_size: samples per replay draw (``None``: the training batch size).
    """

    def __init__(self, *, buffer_size: int = 500, replay_batch_size: int | None = None) -> None:
        super().__init__(
            buffer_size=buffer_size, replay_batch_size=replay_batch_size, store_logits=False
        )

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """``{"replay": CE(replay batch)}`` from the second task on."""
        if not self.replaying():
            return {}
        batch = self.draw(context)
        logits = self.replay_logits(context.model, batch)
        return {"replay": F.cross_entropy(logits, batch.labels)}


class DER(Replay):
    """Dark experience replay: CE(current) + alpha * MSE(replayed logits now, stored logits).

    The MSE covers only the classes the stored logits cover (those known at insertion).

    Args:
        buffer_size: M, the memory's capacity in samples.
        replay_batch_size: samples per replay draw (``None``: the training batch size).
        alpha: weight of the logit-matching term (0.1 is a starting point: tune it).
    """

    def __init__(
        self, *, buffer_size: int = 500, replay_batch_size: int | None = None, alpha: float = 0.1
    ) -> None:
        super().__init__(
            buffer_size=buffer_size, replay_batch_size=replay_batch_size, store_logits=True
        )
        self.alpha = check_number(alpha, parameter="alpha", low=0.0)

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """``{"der": alpha * MSE}`` from the second task on."""
        if not self.replaying():
            return {}
        batch = self.draw(context)
        logits = self.replay_logits(context.model, batch)
        return {"der": self.alpha * covered_mse(logits, batch.logits)}


class DERPP(DER):
    """DER++: DER's loss + beta * CE(a second, independently drawn replay batch, its labels).

    Args:
        buffer_size: M, the memory's capacity in samples.
        replay_batch_size: samples per replay draw (``None``: the training batch size).
        alpha: weight of the logit-matching term (0.1 is a starting point: tune it).
        beta: weight of the replayed labels' cross-entropy (0.5 is a starting point: tune it).
    """

    def __init__(
        self,
        *,
        buffer_size: int = 500,
        replay_batch_size: int | None = None,
        alpha: float = 0.1,
        beta: float = 0.5,
    ) -> None:
        super().__init__(buffer_size=buffer_size, replay_batch_size=replay_batch_size, alpha=alpha)
        self.beta = check_number(beta, parameter="beta", low=0.0)

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """``{"der": alpha * MSE, "der_ce": beta * CE}`` from the second task on."""
        terms = super().loss_terms(context)
        if not terms:
            return terms
        batch = self.draw(context)
        logits = self.replay_logits(context.model, batch)
        return {**terms, "der_ce": self.beta * F.cross_entropy(logits, batch.labels)}


def _all_seen_classes(model: ContinualModel) -> bool:
    """Whether the heads give every sample the logits of all seen classes (shared net, cil)."""
    heads = model.heads
    return isinstance(heads, ClassIncrementalHeads) and not heads.per_task_network
