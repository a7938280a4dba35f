"""Invariants of the baselines: fix freezes, independent does not transfer, joint sees the union."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hatcl.algorithms.independent import PerTaskBackbones
from hatcl.algorithms.joint import Joint
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.cli_run import compose_config
from hatcl.data.base import build_continual_data
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.batches import TensorBatches
from hatcl.training.experiment import (
    ExperimentConfig,
    build_algorithm,
    build_model,
    build_module,
)
from hatcl.training.step import grouped_forward
from hatcl.training.task_loop import train_task

TINY = ["trainer.max_epochs=1", "data.num_tasks=2", "trainer.enable_progress_bar=false"]


def _experiment(algorithm: str, *overrides: str):
    config = ExperimentConfig.from_mapping(
        compose_config([f"algorithm={algorithm}", *TINY, *overrides])
    )
    data = build_continual_data(config.data, seed=config.seed)
    algo = build_algorithm(config.algorithm)
    model = build_model(config, data=data, algorithm=algo)
    return config, data, build_module(config, model=model, algorithm=algo)


def test_ewc_trains_a_second_task_on_the_cnn():
    """The Fisher of conv layers (per-sample gradients) must not tie later losses to old graphs."""
    config, data, module = _experiment(
        "ewc",
        "data=split_digits",
        "backbone=cnn",
        "backbone.channels=[4,4,4]",
        "backbone.fc_dims=[8,8]",
        "data.train_subset=64",
        "algorithm.fisher_samples=16",
    )
    train_task(module, data.tasks[0], config=config)
    fishers = module.algorithm.consolidated()
    assert {"backbone.convs.0.weight", "backbone.linears.0.weight"} <= set(fishers)
    assert all(not f.requires_grad and (f >= 0).all() for f, _ in fishers.values())
    before = {n: p.clone() for n, p in module.model.backbone.named_parameters()}
    train_task(module, data.tasks[1], config=config)  # two steps or more: backward each time
    assert any(not torch.equal(p, before[n]) for n, p in module.model.backbone.named_parameters())


def test_fix_leaves_the_backbone_bit_identical_after_task_1():
    config, data, module = _experiment("fix", "backbone.batch_norm=shared", "backbone.dropout=0.2")
    model = module.model
    train_task(module, data.tasks[0], config=config)
    after_task_1 = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.setup_task(task_id=2, num_classes=data.tasks[1].num_classes)
    head_2 = {k: v.clone() for k, v in model.heads.head(2).state_dict().items()}
    train_task(module, data.tasks[1], config=config)
    after_task_2 = model.backbone.state_dict()
    assert any("running_mean" in k for k in after_task_2)  # batch-norm statistics too
    for key, value in after_task_1.items():
        assert torch.equal(value, after_task_2[key]), key
    assert not torch.equal(head_2["weight"], model.heads.head(2).weight)  # the head did train
    assert all(not p.requires_grad for p in model.backbone.parameters())


def test_independent_trains_a_fresh_backbone_per_task_and_keeps_old_ones():
    config, data, module = _experiment("independent")
    model = module.model
    assert isinstance(model.backbone, PerTaskBackbones)
    train_task(module, data.tasks[0], config=config)
    first = {k: v.clone() for k, v in model.backbone.backbone(1).state_dict().items()}
    model.setup_task(task_id=2, num_classes=data.tasks[1].num_classes)
    fresh = {k: v.clone() for k, v in model.backbone.backbone(2).state_dict().items()}
    assert all(not torch.equal(first[k], fresh[k]) for k in first if k.endswith("weight"))
    train_task(module, data.tasks[1], config=config)
    for key, value in first.items():
        assert torch.equal(value, model.backbone.backbone(1).state_dict()[key]), key
    assert not torch.equal(fresh["linears.0.weight"], model.backbone.backbone(2).linears[0].weight)
    keys = model.state_dict().keys()
    assert {
        "backbone.backbones.1.linears.0.weight",
        "backbone.backbones.2.linears.0.weight",
    } <= set(keys)


def test_independent_structure_is_rebuilt_by_setup_task_for_loading():
    _, data, module = _experiment("independent")
    state = None
    for task in data.tasks:
        module.model.setup_task(task_id=task.task_id, num_classes=task.num_classes)
    state = module.model.state_dict()
    _, _, other = _experiment("independent")
    for task in data.tasks:
        other.model.setup_task(task_id=task.task_id, num_classes=task.num_classes)
    other.model.load_state_dict(state)
    assert torch.equal(
        other.model.backbone.backbone(2).linears[0].weight,
        state["backbone.backbones.2.linears.0.weight"],
    )


def test_joint_training_split_is_the_union_of_seen_tasks():
    config = ExperimentConfig.from_mapping(compose_config(["data.num_tasks=3"]))
    data = build_continual_data(config.data, seed=config.seed)
    split = Joint().training_split(task_data=data.tasks[2], seen_tasks=data.tasks)
    sizes = [len(t.train) for t in data.tasks]
    assert len(split.y) == len(split.x) == len(split.task_ids) == sum(sizes)
    assert torch.equal(split.x, torch.cat([t.train.x for t in data.tasks]))
    assert torch.equal(split.y, torch.cat([t.train.y for t in data.tasks]))
    counts = torch.bincount(split.task_ids, minlength=4)[1:].tolist()
    assert counts == sizes
    with pytest.raises(ValueError, match="seen_tasks"):
        Joint().training_split(task_data=data.tasks[2], seen_tasks=data.tasks[:2])


def test_joint_batches_reach_the_loop_with_task_ids():
    config, data, module = _experiment("joint")
    seen = []
    original = module.training_step

    def spy(batch, batch_idx):
        seen.append(batch[2].clone())
        return original(batch, batch_idx)

    module.training_step = spy
    train_task(module, data.tasks[0], config=config, seen_tasks=data.tasks[:1])
    seen.clear()
    train_task(module, data.tasks[1], config=config, seen_tasks=data.tasks)
    ids = torch.cat(seen)
    assert torch.bincount(ids, minlength=3)[1:].tolist() == [len(t.train) for t in data.tasks]


def test_grouped_forward_routes_each_sample_through_its_own_head():
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(5,), masked=False)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=5))
    model.setup_task(task_id=1, num_classes=2)
    model.setup_task(task_id=2, num_classes=3)
    x = torch.randn(6, 4)
    y = torch.tensor([1, 2, 0, 0, 2, 1])
    task_ids = torch.tensor([1, 2, 2, 1, 2, 1])
    output = grouped_forward(model, x, task_ids=task_ids, scale=None)
    per_sample = [
        F.cross_entropy(
            model.heads(backbone(x[i : i + 1], task_id=t, stage=None).features, task_id=t),
            y[i : i + 1],
        )
        for i, t in enumerate(task_ids.tolist())
    ]
    loss = F.cross_entropy(output.logits, y)
    torch.testing.assert_close(loss, torch.stack(per_sample).mean())
    assert output.logits.shape == (6, 3)
    assert torch.isinf(output.logits[[0, 3, 5], 2]).all()
    torch.testing.assert_close(
        output.backbone.features, backbone(x, task_id=1, stage=None).features
    )
    loss.backward()
    assert torch.isfinite(model.heads.head(1).weight.grad).all()


@pytest.mark.parametrize(
    ("masked", "batch_norm", "depends"),
    [
        (False, "none", False),
        (False, "shared", False),
        (False, "independent", True),
        (True, "none", True),
    ],
)
def test_backbone_depends_on_task_only_with_masks_or_per_task_parts(masked, batch_norm, depends):
    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(5,), masked=masked, batch_norm=batch_norm)
    assert backbone.depends_on_task() is depends
    assert PerTaskBackbones(first=backbone).depends_on_task()  # one backbone per task


def test_grouped_forward_runs_a_task_dependent_backbone_per_group():
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(5,), masked=True)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=5))
    for task in (1, 2):
        model.setup_task(task_id=task, num_classes=2)
    calls = []
    backbone.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    x, task_ids = torch.randn(5, 4), torch.tensor([2, 1, 2, 2, 1])
    output = grouped_forward(model, x, task_ids=task_ids, scale=10.0)
    assert sorted(calls) == [2, 3]  # one pass per task group, each with its own masks
    for i, t in enumerate(task_ids.tolist()):
        alone = model(x[i : i + 1], task_id=t, stage=Stage.TRAIN, scale=10.0)
        torch.testing.assert_close(output.logits[i : i + 1], alone.logits)
        torch.testing.assert_close(output.backbone.features[i : i + 1], alone.backbone.features)
    calls.clear()
    plain = MLPBackbone(input_shape=(4,), hidden_dims=(5,), masked=False)
    plain.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    shared = ContinualModel(backbone=plain, heads=model.heads)
    grouped_forward(shared, x, task_ids=task_ids, scale=None)
    assert calls == [5]  # a task-independent backbone runs once on the whole batch


def test_tensor_batches_shuffle_task_ids_with_the_samples():
    x = torch.arange(10.0)
    batches = TensorBatches(
        x,
        torch.arange(10),
        task_ids=torch.arange(10) + 100,
        batch_size=4,
        shuffle=True,
        generator=torch.Generator().manual_seed(3),
    )
    for bx, by, bt in batches:
        assert torch.equal(bx.long(), by) and torch.equal(bt, by + 100)
    with pytest.raises(ValueError, match="task_ids"):
        TensorBatches(x, torch.arange(10), task_ids=torch.arange(3), batch_size=2)


def test_tensor_batches_follow_the_seeded_permutation_batch_by_batch():
    x, y = torch.randn(11, 3), torch.arange(11)
    batches = TensorBatches(
        x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    order = torch.randperm(11, generator=torch.Generator().manual_seed(5))
    got = list(batches)
    assert [len(b[1]) for b in got] == [4, 4, 3]
    assert torch.equal(torch.cat([b[1] for b in got]), order)
    assert torch.equal(torch.cat([b[0] for b in got]), x[order])


def test_joint_frees_each_union_once_its_task_is_done(tmp_path, monkeypatch):
    """Joint's union grows with t; the runner must not keep earlier unions alive."""
    import weakref

    from hatcl.training.runner import run_experiment

    unions, still_alive = [], []
    original = Joint.training_split

    def recording(self, *, task_data, seen_tasks):
        still_alive.extend(i for i, ref in enumerate(unions) if ref() is not None)
        split = original(self, task_data=task_data, seen_tasks=seen_tasks)
        unions.append(weakref.ref(split.x))
        return split

    monkeypatch.setattr(Joint, "training_split", recording)
    config = ExperimentConfig.from_mapping(
        compose_config(["algorithm=joint", *TINY, "data.num_tasks=3", f"output_dir={tmp_path}"])
    )
    run_experiment(config, run_dir=tmp_path / "run")
    assert len(unions) == 3
    assert still_alive == []
