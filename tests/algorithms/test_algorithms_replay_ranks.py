"""One reservoir per process under DDP: rank-local buffers, per-rank draws, resume per rank."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import hatcl.algorithms.memory as memory_module
from hatcl.algorithms.memory import ReservoirMemory
from hatcl.algorithms.replay import DERPP
from hatcl.training.distributed import ignore_rank_local_buffers, rank_local_buffer_names


def _stream(memory: ReservoirMemory, batches: range) -> None:
    for start in batches:
        inputs = torch.arange(start * 8, start * 8 + 8, dtype=torch.float32).unsqueeze(1)
        memory.insert(inputs=inputs, labels=inputs.long().squeeze(1), task_ids=inputs.long()[:, 0])


def _memory(rank: int, monkeypatch: pytest.MonkeyPatch, seed: int = 7) -> ReservoirMemory:
    monkeypatch.setattr(memory_module, "_process_rank", lambda: rank)
    memory = ReservoirMemory(capacity=5)
    memory.generator.seed = seed
    return memory


def test_rank_local_buffers_are_named_for_ddp_to_ignore_even_before_they_exist():
    holder = nn.Module()
    holder.model = nn.BatchNorm1d(3)  # an ordinary buffer owner: DDP keeps syncing it
    holder.algorithm = DERPP(buffer_size=4)
    names = rank_local_buffer_names(holder)
    expected = {
        f"algorithm.memory.{key}" for key in ("seen", "inputs", "labels", "task_ids", "logits")
    } | {"algorithm.memory.generator.state"}
    assert set(names) == expected  # the slots are None until the first insertion
    assert not any(name.startswith("model.") for name in names)
    ignore_rank_local_buffers(holder)
    assert set(holder._ddp_params_and_buffers_to_ignore) == expected


def test_rank_zero_draws_as_one_process_and_other_ranks_draw_their_own(monkeypatch):
    alone = ReservoirMemory(capacity=5)
    alone.generator.seed = 7
    _stream(alone, range(6))
    rank0, rank1 = _memory(0, monkeypatch), None
    _stream(rank0, range(6))
    rank1 = _memory(1, monkeypatch)
    _stream(rank1, range(6))
    assert torch.equal(rank0.inputs, alone.inputs)
    assert not torch.equal(rank1.inputs, rank0.inputs)  # same stream, other slots replaced
    assert int(rank1.seen) == int(rank0.seen) == 48
    again = _memory(1, monkeypatch)
    _stream(again, range(6))
    assert torch.equal(again.inputs, rank1.inputs)  # deterministic per (seed, rank)


def test_resume_is_identical_on_rank_zero_and_draws_anew_on_other_ranks(monkeypatch):
    first = _memory(0, monkeypatch)
    _stream(first, range(3))
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    _stream(first, range(3, 6))  # the uninterrupted process of rank 0
    resumed = {}
    for rank in (0, 1):
        memory = _memory(rank, monkeypatch, seed=99)  # rank 0 continues the saved draws
        saved.seek(0)
        memory.load_state_dict(torch.load(saved, weights_only=True))
        _stream(memory, range(3, 6))
        resumed[rank] = memory
    assert torch.equal(resumed[0].inputs, first.inputs)
    assert torch.equal(resumed[0].generator.state, first.generator.state)
    assert not torch.equal(resumed[1].generator.state, first.generator.state)
