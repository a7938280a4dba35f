"""ER, DER and DER++ under ``head=cil``: losses hand-computed on a toy model and a fixed buffer.

The oracle writes the class-incremental logits out (the hidden layer times the concatenated
weights of both tasks' output blocks) and scores them against global labels; DER's squared
error is summed by hand over the columns each sample's stored logits cover.
"""

from __future__ import annotations

import math

import torch

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.memory import MemoryBatch
from hatcl.algorithms.replay import DER, DERPP, ER
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import ClassIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.step import run_training_step

INF = math.inf
# task 1 has global classes 0, 1; task 2 has 2, 3, 4. A task-1 sample's logits were stored
# when only task 1's two classes existed; a task-2 sample's cover all five.
REPLAY = MemoryBatch(
    inputs=torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0], [2.0, 1.0]]),
    labels=torch.tensor([1, 4, 0, 2]),
    task_ids=torch.tensor([1, 2, 1, 2]),
    logits=torch.tensor(
        [
            [0.3, -0.2, -INF, -INF, -INF],
            [1.0, 0.0, -1.0, 0.4, 0.2],
            [-0.5, 0.7, -INF, -INF, -INF],
            [0.1, 0.2, 0.3, -0.4, 0.5],
        ]
    ),
)


def _toy(tasks=2):
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(2,), hidden_dims=(3,), masked=False)
    heads = ClassIncrementalHeads(input_dim=3)
    heads.setup_task(task_id=1, num_classes=2)
    if tasks == 2:
        heads.setup_task(task_id=2, num_classes=3)
    return ContinualModel(backbone=backbone, heads=heads)


def _hidden(model, x):
    layer = model.backbone.linears[0]
    return torch.relu(x @ layer.weight.T + layer.bias)


def _context(model):
    """A task-2 step's context (its targets global, as the training step passes them)."""
    x = torch.tensor([[0.2, 0.1], [-0.3, 0.4]])
    output = model(x, task_id=2, stage=Stage.TRAIN)
    return StepContext(
        model=model,
        task_id=2,
        batch_index=0,
        num_batches=1,
        scale=None,
        inputs=x,
        targets=torch.tensor([2, 4]),
        output=output,
    )


def _fixed(algorithm, model, batches):
    """Task 2 started, the memory's draws replaced by ``batches`` in order."""
    algorithm.on_task_start(task_id=2, model=model)
    draws = iter(batches)
    algorithm.memory.draw = lambda count: next(draws)


def _all_classes(model, x):
    """The five logits written out: hidden @ [W_1; W_2]^T + [b_1, b_2]."""
    first, second = model.heads.head(1), model.heads.head(2)
    weight = torch.cat([first.weight, second.weight])
    bias = torch.cat([first.bias, second.bias])
    return _hidden(model, x) @ weight.T + bias


def _cross_entropy(logits, labels):
    """Mean over rows of -log softmax at the label, written out."""
    rows = [torch.logsumexp(row, 0) - row[y] for row, y in zip(logits, labels.tolist())]
    return torch.stack(rows).mean()


def test_er_under_cil_scores_all_seen_classes_against_global_labels():
    model = _toy()
    algorithm = ER(buffer_size=10)
    _fixed(algorithm, model, [REPLAY])
    term = algorithm.loss_terms(_context(model))["replay"]
    expected = _cross_entropy(_all_classes(model, REPLAY.inputs), REPLAY.labels)
    assert torch.allclose(term, expected, atol=1e-6)
    # the same loss with the task-1 sample scored within its own block would differ
    own = _all_classes(model, REPLAY.inputs[:1])[:, :2]
    assert not torch.allclose(_cross_entropy(own, REPLAY.labels[:1]), expected, atol=1e-3)


def test_der_under_cil_compares_only_the_stored_columns():
    model = _toy()
    algorithm = DER(buffer_size=10, alpha=0.3)
    _fixed(algorithm, model, [REPLAY])
    term = algorithm.loss_terms(_context(model))["der"]
    now = _all_classes(model, REPLAY.inputs)
    squares, count = 0.0, 0
    for row, stored, task in zip(now, REPLAY.logits, REPLAY.task_ids.tolist()):
        width = 2 if task == 1 else 5  # the classes known when the sample was stored
        for k in range(width):
            squares = squares + (row[k] - stored[k]) ** 2
            count += 1
    assert count == 2 + 5 + 2 + 5
    assert torch.allclose(term, 0.3 * squares / count, atol=1e-6)


def test_derpp_under_cil_adds_beta_times_the_global_cross_entropy_of_a_second_draw():
    model = _toy()
    second = MemoryBatch(
        inputs=torch.tensor([[0.2, -1.0], [1.5, 0.5]]),
        labels=torch.tensor([3, 1]),
        task_ids=torch.tensor([2, 1]),
        logits=torch.zeros(2, 5),
    )
    algorithm = DERPP(buffer_size=10, alpha=0.3, beta=0.7)
    _fixed(algorithm, model, [REPLAY, second])
    terms = algorithm.loss_terms(_context(model))
    expected = 0.7 * _cross_entropy(_all_classes(model, second.inputs), second.labels)
    assert torch.allclose(terms["der_ce"], expected, atol=1e-6)
    assert set(terms) == {"der", "der_ce"}


def test_a_cil_step_stores_global_labels_and_the_logits_of_the_classes_seen_then():
    model = _toy(tasks=1)
    algorithm = DER(buffer_size=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x, own_labels = torch.tensor([[0.2, 0.1], [-0.3, 0.4]]), torch.tensor([0, 2])
    algorithm.on_task_start(task_id=1, model=model)
    run_training_step(
        model=model,
        algorithm=algorithm,
        optimizer=optimizer,
        inputs=x[:1],
        targets=own_labels[:1],
        task_id=1,
        batch_index=0,
        num_batches=1,
    )
    model.heads.setup_task(task_id=2, num_classes=3)
    algorithm.on_task_start(task_id=2, model=model)
    algorithm.memory.draw = lambda count: REPLAY  # any fixed batch: the step only needs a draw
    run_training_step(
        model=model,
        algorithm=algorithm,
        optimizer=optimizer,
        inputs=x,
        targets=own_labels,
        task_id=2,
        batch_index=0,
        num_batches=1,
    )
    memory = algorithm.memory
    assert torch.equal(memory.labels[:3], torch.tensor([0, 2, 4]))  # task 2: own label + 2
    assert torch.equal(memory.task_ids[:3], torch.tensor([1, 2, 2]))
    with torch.no_grad():
        now = model(x, task_id=2, stage=Stage.TRAIN).logits  # lr 0: the logits of the step
    assert memory.logits.shape[1] == 5
    assert torch.isinf(memory.logits[0, 2:]).all() and torch.isfinite(memory.logits[0, :2]).all()
    assert torch.allclose(memory.logits[1:3], now, atol=1e-6)
