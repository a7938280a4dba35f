"""Distributed training: batch shards, and a 2-process CPU DDP run whose ranks agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hatcl.training.batches import TensorBatches
from hatcl.training.checkpoint import load_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src"
DRIVER = Path(__file__).resolve().parent / "run_driver.py"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _samples(batches: TensorBatches) -> list[int]:
    return [int(v) for x, _ in batches for v in x[:, 0]]


def test_eval_shards_partition_the_samples_exactly():
    x = torch.arange(11.0).unsqueeze(1)
    shards = []
    for rank in range(3):
        batches = TensorBatches(x, torch.zeros(11), batch_size=2)
        batches.set_shard(rank=rank, world_size=3)
        shards.append(_samples(batches))
        assert len(batches) == len(list(batches))
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]


def test_training_shards_are_equal_and_cover_one_shuffled_order():
    x = torch.arange(11.0).unsqueeze(1)
    shards = []
    for rank in range(2):
        batches = TensorBatches(
            x,
            torch.zeros(11),
            batch_size=4,
            shuffle=True,
            generator=torch.Generator().manual_seed(5),
            equal_shards=True,
        )
        batches.set_shard(rank=rank, world_size=2)
        shards.append(_samples(batches))
        assert len(batches) == 2  # ceil(6 / 4) on both ranks
    order = torch.randperm(11, generator=torch.Generator().manual_seed(5)).tolist()
    padded = order + order[:1]
    assert shards == [padded[0::2], padded[1::2]]
    assert len(shards[0]) == len(shards[1]) == 6


def test_two_process_ddp_run_ranks_agree(tmp_path):
    run, digests = tmp_path / "run", tmp_path / "digests"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("LOCAL_RANK", None)
    process = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--digest",
            str(digests),
            "algorithm=fgadahat",  # masks and importances accumulated per process
            "trainer.strategy=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "trainer.num_threads=1",
            "data.num_tasks=2",
            "trainer.enable_progress_bar=false",
            "trainer.loggers=[csv]",
            "trainer.figures=false",
            f"output_dir={run}",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    rank0, rank1 = (json.loads((digests / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert rank0["masks_sha256"] == rank1["masks_sha256"]
    assert rank0["model_sha256"] == rank1["model_sha256"]
    assert rank0["algorithm_sha256"] == rank1["algorithm_sha256"]
    assert rank0["algorithm_sha256"] != EMPTY_SHA256  # the importances are in the state
    assert rank0["metrics"] == rank1["metrics"]
    assert rank0["metrics"] == json.loads((run / "metrics.json").read_text())
    # rank 0 alone wrote the run folder and printed; the checkpoint holds its masks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digests", "run"]
    assert process.stdout.count("task 2/2") == 1
    payload = load_checkpoint(run / "checkpoints" / "task_2.ckpt")
    assert payload["model"]["backbone.masker.store.task_ids"].tolist() == [1, 2]


def _rows(tensor: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in tensor.reshape(tensor.shape[0], -1)}


@pytest.mark.slow
def test_two_process_ddp_replay_keeps_one_reservoir_per_rank(tmp_path):
    run, digests, dumps = tmp_path / "run", tmp_path / "digests", tmp_path / "dumps"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("LOCAL_RANK", None)
    process = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--digest",
            str(digests),
            "--replay-dump",
            str(dumps),
            "algorithm=derpp",
            "algorithm.buffer_size=30",
            "trainer.strategy=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "trainer.num_threads=1",
            "data.num_tasks=2",
            "trainer.enable_progress_bar=false",
            "trainer.loggers=[]",
            "trainer.figures=false",
            f"output_dir={run}",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    rank0, rank1 = (json.loads((digests / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert rank0["model_sha256"] == rank1["model_sha256"]  # gradients are averaged
    assert rank0["metrics"] == rank1["metrics"]
    assert rank0["algorithm_sha256"] != rank1["algorithm_sha256"]  # a memory per process
    dump0, dump1 = (torch.load(dumps / f"rank_{r}.pt", weights_only=True) for r in (0, 1))
    seen0, seen1 = _rows(dump0["seen"]), _rows(dump1["seen"])
    assert seen0 != seen1  # the shards differ (rows in both: padding, or equal images)
    for own, other, dump in ((seen0, seen1, dump0), (seen1, seen0, dump1)):
        assert int(dump["fill"]) == 30
        slots = _rows(dump["inputs"])
        assert slots <= own  # only samples of this process's shard
        assert slots - other  # and some that only this process saw
    assert _rows(dump0["inputs"]) != _rows(dump1["inputs"])
    memory = json.loads((run / "tasks.json").read_text())["tasks"][-1]["memory"]
    assert memory["capacity"] == 30 and memory["fill"] == 30  # rank 0's memory
    assert memory["seen"] == dump0["seen"].shape[0]
    payload = load_checkpoint(run / "checkpoints" / "task_2.ckpt")
    assert int(payload["algorithm"]["memory.seen"]) == memory["seen"]
    assert torch.equal(payload["algorithm"]["memory.inputs"], dump0["inputs"])
