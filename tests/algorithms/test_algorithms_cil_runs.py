"""Replay and WSN runs without a task id at test time: ER, DER, DER++ under ``head=cil``; WSN
under ``cil`` (its task-aware matrix is its ``til`` matrix, TAg <= TAw) and ``dil`` (its shared
head frozen after the first task, so task-aware BWT is exactly 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hatcl.algorithms.wsn import WSN
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.cli_run import run_command
from hatcl.heads.heads import DomainIncrementalHead
from hatcl.masking.stage import Stage
from hatcl.training.step import run_training_step

QUICK = [
    "data.num_tasks=3",  # 4, 3 and 3 classes: blocks of unequal width
    "backbone.hidden_dims=[32,32]",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
]


def _run(folder: Path, *overrides: str, data: str = "split_digits") -> dict:
    assert run_command([f"data={data}", *QUICK, *overrides, f"output_dir={folder}"]) == 0
    return json.loads((folder / "metrics.json").read_text())


def _bounded(metrics: dict) -> None:
    """TAg <= TAw and TAg <= task-id accuracy, entry by entry."""
    tag, taw = metrics["accuracy_matrix"], metrics["accuracy_matrix_task_aware"]
    task_id = metrics["task_id_accuracy"]
    assert [len(row) for row in tag] == [len(row) for row in taw] == [1, 2, 3]
    for t, row in enumerate(tag):
        for tau, value in enumerate(row):
            assert value <= taw[t][tau] + 1e-12
            assert value <= task_id[t][tau] + 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["er", "der", "derpp"])
def test_replay_runs_under_cil_with_global_labels_in_its_memory(tmp_path, algorithm):
    run = tmp_path / "run"
    metrics = _run(run, f"algorithm={algorithm}", "algorithm.buffer_size=200", "head=cil")
    _bounded(metrics)
    tasks = json.loads((run / "tasks.json").read_text())["tasks"]
    assert set(tasks[-1]["memory"]["per_task"]) == {"1", "2", "3"}
    assert sum(tasks[-1]["memory"]["per_task"].values()) == 200


@pytest.fixture(scope="module")
def wsn_runs(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("wsn")
    return {head: _run(base / head, "algorithm=wsn", f"head={head}") for head in ("til", "cil")}


@pytest.mark.slow
def test_wsn_under_cil_has_its_til_matrix_as_task_aware_matrix(wsn_runs):
    cil, til = wsn_runs["cil"], wsn_runs["til"]
    assert cil["accuracy_matrix_task_aware"] == til["accuracy_matrix"]
    assert cil["bwt_task_aware"] == til["bwt"] == 0.0
    _bounded(cil)
    # the task is predicted: a wrong task makes some answers wrong that TAw counts right
    assert cil["average_accuracy"] < cil["average_accuracy_task_aware"]


@pytest.mark.slow
def test_wsn_under_dil_predicts_the_task_and_keeps_task_aware_bwt_zero(tmp_path):
    metrics = _run(tmp_path / "dil", "algorithm=wsn", "head=dil", data="permuted_digits")
    assert len(metrics["task_id_accuracy"]) == 3
    assert metrics["bwt_task_aware"] == 0.0
    assert metrics["accuracy_matrix"] != metrics["accuracy_matrix_task_aware"]


def test_wsn_freezes_the_shared_dil_head_even_when_grads_are_cleared_before_the_task_ends():
    """The training loop may set gradients to None before ``on_task_end``: the shared head a
    finished task trained must still stay bit-identical through later tasks."""
    torch.manual_seed(4)
    backbone = MLPBackbone(input_shape=(3,), hidden_dims=(4,), masked=False)
    model = ContinualModel(backbone=backbone, heads=DomainIncrementalHead(input_dim=4))
    algorithm = WSN(mask_fraction=0.5)
    algorithm.configure_model(model=model)
    probe, recorded = torch.randn(5, 3), {}
    for task_id in (1, 2, 3):
        model.setup_task(task_id=task_id, num_classes=2)
        algorithm.on_task_start(task_id=task_id, model=model)
        optimizer = torch.optim.SGD(algorithm.trainable_parameters(model), lr=0.1, momentum=0.9)
        for step in range(3):
            run_training_step(
                model=model,
                algorithm=algorithm,
                optimizer=optimizer,
                inputs=torch.randn(8, 3) + task_id,
                targets=torch.randint(0, 2, (8,)),
                task_id=task_id,
                batch_index=step,
                num_batches=3,
            )
        optimizer.zero_grad(set_to_none=True)
        algorithm.on_task_end(task_id=task_id, model=model, task_data=None)
        head = model.heads.linear.weight.detach().clone()
        if task_id > 1:
            assert torch.equal(head, recorded["head"])
        recorded["head"] = head
        with torch.no_grad():
            for seen in range(1, task_id + 1):
                logits = model(probe, task_id=seen, stage=Stage.TEST).logits
                assert torch.equal(logits, recorded.setdefault(seen, logits)), (seen, task_id)
