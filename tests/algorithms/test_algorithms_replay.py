"""The reservoir memory, ER, DER and DER++: oracles written out independently of the code."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.memory import MemoryBatch, ReservoirMemory
from hatcl.algorithms.registries import ALGORITHMS
from hatcl.algorithms.replay import DER, DERPP, ER
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.functional.replay import last_writers, reservoir_slots
from hatcl.heads.heads import DomainIncrementalHead, TaskIncrementalHeads
from hatcl.masking.stage import Stage


def _algorithm_r(values, uniforms, capacity, seen=0):
    """Vitter's algorithm R one sample at a time (the spec's wording)."""
    store = [None] * capacity
    for value, u in zip(values, uniforms):
        seen += 1
        if seen <= capacity:
            store[seen - 1] = value
        else:
            j = math.floor(u * seen)
            if j < capacity:
                store[j] = value
    return store


def test_batched_reservoir_equals_algorithm_r_one_sample_at_a_time():
    generator = torch.Generator().manual_seed(0)
    capacity, store, seen = 4, [None] * 4, 0
    expected_values, expected_uniforms = [], []
    for batch in range(6):
        values = torch.arange(batch * 5, batch * 5 + 5)
        uniform = torch.rand(5, generator=generator, dtype=torch.float64)
        slots = reservoir_slots(seen=torch.tensor(seen), uniform=uniform, capacity=capacity)
        writers = last_writers(slots, capacity=capacity)
        store = [values[w].item() if w >= 0 else old for w, old in zip(writers.tolist(), store)]
        seen += 5
        expected_values += values.tolist()
        expected_uniforms += uniform.tolist()
    assert store == _algorithm_r(expected_values, expected_uniforms, capacity)


def test_inclusion_probability_is_min_one_m_over_n_by_simulation():
    """Over 1200 seeds, each of n = 12 samples is kept with frequency M / n = 1/3."""
    capacity, n, runs = 4, 12, 1200
    counts = torch.zeros(n)
    for seed in range(runs):
        memory = ReservoirMemory(capacity=capacity)
        memory.generator.seed = seed
        for start in range(0, n, 5):  # uneven batches: 5, 5, 2
            index = torch.arange(start, min(start + 5, n))
            memory.insert(
                inputs=index.float().unsqueeze(1), labels=index, task_ids=torch.ones_like(index)
            )
        counts[memory.labels] += 1
    frequency = counts / runs
    p = capacity / n
    sigma = math.sqrt(p * (1 - p) / runs)
    assert torch.all((frequency - p).abs() < 4.5 * sigma), frequency
    # chi-square over the 12 cells (11 degrees of freedom; 99.9% quantile 31.26)
    chi2 = (((counts - runs * p) ** 2) / (runs * p)).sum()
    assert chi2 < 31.26


def test_fill_composition_and_memory_bound():
    memory = ReservoirMemory(capacity=6)
    for task in (1, 2, 3):
        x = torch.randn(10, 2)
        memory.insert(
            inputs=x, labels=torch.zeros(10, dtype=torch.long), task_ids=torch.full((10,), task)
        )
    summary = memory.composition()
    assert summary["seen"] == 30 and summary["fill"] == 6 and summary["capacity"] == 6
    assert sum(summary["per_task"].values()) == 6
    assert memory.inputs.shape == (6, 2)  # O(M), whatever the number of tasks


def test_draws_are_uniform_over_the_filled_slots():
    memory = ReservoirMemory(capacity=10)
    memory.generator.seed = 3
    memory.insert(  # 4 of 10 slots filled
        inputs=torch.zeros(4, 1), labels=torch.arange(4), task_ids=torch.ones(4, dtype=torch.long)
    )
    labels = memory.draw(40000).labels
    frequency = torch.bincount(labels, minlength=10).float() / 40000
    assert torch.all(frequency[4:] == 0)
    assert torch.allclose(frequency[:4], torch.full((4,), 0.25), atol=0.015)


def test_memory_state_round_trip_gives_identical_draws_and_insertions():
    def stream(memory, batches):
        for b in batches:
            memory.insert(
                inputs=torch.full((3, 2), float(b)),
                labels=torch.full((3,), b),
                task_ids=torch.full((3,), 1 + b % 2),
                logits=torch.randn(3, 2 + b % 2, generator=torch.Generator().manual_seed(b)),
            )

    a = ReservoirMemory(capacity=5, store_logits=True)
    a.generator.seed = 11
    stream(a, range(4))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = ReservoirMemory(capacity=5, store_logits=True)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    stream(a, range(4, 9))
    stream(b, range(4, 9))
    for name in ("inputs", "labels", "task_ids", "logits", "seen"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    da, db = a.draw(7), b.draw(7)
    assert torch.equal(da.inputs, db.inputs) and torch.equal(da.logits, db.logits)


# -- losses on a toy model and a fixed replay batch -------------------------------------------


def _toy(head_kind="til"):
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(2,), hidden_dims=(3,), masked=False)
    if head_kind == "til":
        heads = TaskIncrementalHeads(input_dim=3)
        heads.setup_task(task_id=1, num_classes=2)
        heads.setup_task(task_id=2, num_classes=3)
    else:
        heads = DomainIncrementalHead(input_dim=3)
        heads.setup_task(task_id=1, num_classes=2)
    return ContinualModel(backbone=backbone, heads=heads)


REPLAY = MemoryBatch(
    inputs=torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]]),
    labels=torch.tensor([1, 2, 0]),
    task_ids=torch.tensor([1, 2, 1]),
    logits=torch.tensor([[0.3, -0.2, -math.inf], [1.0, 0.0, -1.0], [-0.5, 0.7, -math.inf]]),
)


def _hidden(model, x):
    layer = model.backbone.linears[0]
    return torch.relu(x @ layer.weight.T + layer.bias)


def _own_head(model, x, task):
    head = model.heads.head(task)
    return _hidden(model, x.unsqueeze(0)) @ head.weight.T + head.bias


def _context(model, task_id=2):
    x = torch.tensor([[0.2, 0.1], [-0.3, 0.4]])
    y = torch.tensor([0, 2])
    output = model(x, task_id=task_id, stage=Stage.TRAIN)
    return StepContext(
        model=model,
        task_id=task_id,
        batch_index=0,
        num_batches=1,
        scale=None,
        inputs=x,
        targets=y,
        output=output,
    )


def _fixed(algorithm, model, batches):
    algorithm.on_task_start(task_id=2, model=model)
    draws = iter(batches)
    algorithm.memory.draw = lambda count: next(draws)


def test_er_loss_is_the_cross_entropy_of_each_replayed_sample_through_its_own_head():
    model = _toy()
    algorithm = ER(buffer_size=10)
    _fixed(algorithm, model, [REPLAY])
    term = algorithm.loss_terms(_context(model))["replay"]
    losses = []
    for x, y, t in zip(REPLAY.inputs, REPLAY.labels, REPLAY.task_ids):
        logits = _own_head(model, x, int(t))[0]
        losses.append(-(logits[y] - torch.logsumexp(logits, 0)))
    assert torch.allclose(term, torch.stack(losses).mean(), atol=1e-6)


def test_der_mse_covers_only_the_stored_classes():
    model = _toy()
    algorithm = DER(buffer_size=10, alpha=0.3)
    _fixed(algorithm, model, [REPLAY])
    term = algorithm.loss_terms(_context(model))["der"]
    squares, count = 0.0, 0
    for x, stored, t in zip(REPLAY.inputs, REPLAY.logits, REPLAY.task_ids):
        now = _own_head(model, x, int(t))[0]
        for k in range(now.shape[0]):  # task 1: 2 classes covered; task 2: 3
            squares = squares + (now[k] - stored[k]) ** 2
            count += 1
    assert count == 7
    assert torch.allclose(term, 0.3 * squares / count, atol=1e-6)


def test_derpp_adds_beta_times_the_cross_entropy_of_a_second_draw():
    model = _toy()
    second = MemoryBatch(
        inputs=torch.tensor([[2.0, 1.0]]),
        labels=torch.tensor([1]),
        task_ids=torch.tensor([2]),
        logits=torch.zeros(1, 3),
    )
    algorithm = DERPP(buffer_size=10, alpha=0.3, beta=0.7)
    _fixed(algorithm, model, [REPLAY, second])
    terms = algorithm.loss_terms(_context(model))
    logits = _own_head(model, second.inputs[0], 2)
    assert torch.allclose(terms["der_ce"], 0.7 * F.cross_entropy(logits, second.labels), atol=1e-6)
    assert set(terms) == {"der", "der_ce"}


def test_dil_replay_goes_through_the_shared_head():
    model = _toy("dil")
    batch = MemoryBatch(
        inputs=REPLAY.inputs, labels=torch.tensor([1, 0, 0]), task_ids=REPLAY.task_ids, logits=None
    )
    algorithm = ER(buffer_size=10)
    _fixed(algorithm, model, [batch])
    term = algorithm.loss_terms(_context(model))["replay"]
    logits = _hidden(model, batch.inputs) @ model.heads.linear.weight.T + model.heads.linear.bias
    assert torch.allclose(term, F.cross_entropy(logits, batch.labels), atol=1e-6)


def test_no_replay_on_the_first_task_and_insertion_after_each_step():
    model = _toy()
    algorithm = DER(buffer_size=10)
    algorithm.on_task_start(task_id=1, model=model)
    context = _context(model, task_id=1)
    assert algorithm.loss_terms(context) == {}
    algorithm.after_optimizer_step(context)
    assert int(algorithm.memory.seen) == 2
    assert torch.equal(algorithm.memory.inputs[:2], context.inputs)
    assert torch.equal(algorithm.memory.task_ids[:2], torch.tensor([1, 1]))
    assert torch.equal(algorithm.memory.logits[:2], context.output.logits.detach())


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"buffer_size": 0}, "buffer_size"),
        ({"replay_batch_size": -1}, "replay_batch_size"),
        ({"alpha": -0.5}, "alpha"),
        ({"beta": float("nan")}, "beta"),
    ],
)
def test_options_are_validated_up_front(options, word):
    with pytest.raises(ValueError, match=word):
        DERPP(**options)


def test_registered_and_listed():
    assert {"er", "der", "derpp", "wsn"} <= set(ALGORITHMS.names())


@pytest.mark.parametrize(("replay_batch_size", "expected"), [(None, 2), (5, 5)])
def test_derpp_draws_two_separate_batches_of_the_replay_batch_size(replay_batch_size, expected):
    """Each DER++ step asks the memory for two draws of ``replay_batch_size`` samples (default:
    the training batch's size), and the two are different samples, not one batch reused."""
    model = _toy()
    algorithm = DERPP(buffer_size=40, replay_batch_size=replay_batch_size)
    algorithm.memory.generator.seed = 3
    inputs = torch.arange(80.0).reshape(40, 2)  # 40 distinct samples, all stored
    algorithm.memory.insert(
        inputs=inputs,
        labels=torch.zeros(40, dtype=torch.long),
        task_ids=torch.ones(40, dtype=torch.long),
        logits=torch.zeros(40, 2),
    )
    algorithm.on_task_start(task_id=2, model=model)
    requested, drawn = [], []
    original = algorithm.memory.draw

    def recording(count):
        requested.append(count)
        drawn.append(original(count))
        return drawn[-1]

    algorithm.memory.draw = recording
    terms = algorithm.loss_terms(_context(model))  # the step's batch holds 2 samples
    assert set(terms) == {"der", "der_ce"}
    assert requested == [expected, expected]
    assert not torch.equal(drawn[0].inputs, drawn[1].inputs)
    first_rows = {tuple(row.tolist()) for row in drawn[0].inputs}
    assert first_rows <= {tuple(row.tolist()) for row in inputs}
