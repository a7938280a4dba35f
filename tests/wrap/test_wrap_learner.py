"""The facade for any loop gives the Lightning runner's accuracy matrix; hooks run in order."""

from __future__ import annotations

import json

import lightning as L
import torch
import torch.nn.functional as F
from plain_nets import PlainCNN

import hatcl
from hatcl.algorithms.base import Algorithm
from hatcl.cli_run import compose_config, run_from_config
from hatcl.data.base import build_continual_data
from hatcl.training.batches import TensorBatches
from hatcl.training.experiment import ExperimentConfig, build_algorithm
from hatcl.wrap.custom import custom_backbone

OVERRIDES = [
    "backbone=custom",
    "backbone.target=plain_nets:make_cnn",
    "algorithm=fgadahat",
    "data=split_digits",
    "data.num_tasks=3",
    "data.train_subset=120",
    "data.test_subset=60",
    "optimizer.lr=0.01",
    "trainer.max_epochs=2",
    "trainer.batch_size=32",
    "trainer.enable_progress_bar=false",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
]


def _facade_matrix(config: ExperimentConfig) -> list[list[float]]:
    """The runner's run, written as a plain PyTorch loop over the facade."""
    L.seed_everything(config.seed, verbose=False)
    data = build_continual_data(config.data, seed=config.seed)
    algorithm = build_algorithm(config.algorithm)
    backbone = custom_backbone(**config.backbone.options, input_shape=data.input_shape, masked=True)
    learner = hatcl.Learner(backbone=backbone, algorithm=algorithm)
    matrix = []
    for task in data.tasks:
        generator = torch.Generator().manual_seed(config.seed * 10_007 + task.task_id)
        batches = TensorBatches(
            task.train.x, task.train.y, batch_size=32, shuffle=True, generator=generator
        )
        learner.start_task(task.task_id, num_classes=task.num_classes, num_batches=len(batches))
        optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=0.01)
        for _ in range(config.trainer.max_epochs):
            learner.train()
            for x, y in batches:
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(learner(x, y), y) + learner.penalty()
                loss.backward()
                learner.before_optimizer_step()
                optimizer.step()
                learner.after_optimizer_step()
        learner.end_task()
        learner.eval()
        with torch.no_grad():
            matrix.append(
                [
                    int((learner.predict(t.test.x, task_id=t.task_id).argmax(1) == t.test.y).sum())
                    / len(t.test.y)
                    for t in data.tasks[: task.task_id]
                ]
            )
    return matrix


def test_facade_and_lightning_runner_give_the_same_accuracy_matrix(tmp_path):
    cfg = compose_config([*OVERRIDES, f"output_dir={tmp_path}"])
    run_from_config(cfg, run_dir=tmp_path / "run")
    runner = json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy_matrix"]
    facade = _facade_matrix(ExperimentConfig.from_mapping(cfg))
    assert len(facade) == 3
    assert facade == runner


class _Recorder(Algorithm):
    """Records the hooks the facade calls, in order."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def on_task_start(self, *, task_id, model):
        self.calls.append("on_task_start")

    def loss_terms(self, context):
        self.calls.append("loss_terms")
        return {}

    def adjust_gradients(self, context):
        self.calls.append("adjust_gradients")

    def compensate_gradients(self, context):
        self.calls.append("compensate_gradients")

    def after_optimizer_step(self, context):
        self.calls.append("after_optimizer_step")

    def on_task_end(self, *, task_id, model, task_data):
        self.calls.append("on_task_end")


def test_facade_calls_the_hooks_in_the_step_order_and_refuses_a_missing_forward():
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    algorithm = _Recorder()
    learner = hatcl.Learner(backbone=hatcl.wrap(PlainCNN(), x, masked=False), algorithm=algorithm)
    learner.start_task(1, num_classes=2, num_batches=1)
    optimizer = torch.optim.SGD(learner.trainable_parameters(), lr=0.1)
    loss = F.cross_entropy(learner(x, y), y) + learner.penalty()
    loss.backward()
    learner.before_optimizer_step()
    optimizer.step()
    learner.after_optimizer_step()
    learner.end_task()
    assert algorithm.calls == [
        "on_task_start",
        "loss_terms",
        "adjust_gradients",
        "compensate_gradients",
        "after_optimizer_step",
        "on_task_end",
    ]
    try:
        learner.before_optimizer_step()
    except RuntimeError as error:
        assert "learner.forward(x, y)" in str(error)
    else:  # pragma: no cover
        raise AssertionError("a hook without a forward must be refused")
