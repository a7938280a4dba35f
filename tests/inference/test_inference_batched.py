"""Several tasks per forward: equal to one forward per task, on every built-in backbone."""

from __future__ import annotations

import pytest
import torch

from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.functional.task_scores import max_softmax
from hatcl.heads.heads import ClassIncrementalHeads, DomainIncrementalHead
from hatcl.inference.batched import stacks_tasks, task_logits
from hatcl.inference.config import CilConfig
from hatcl.inference.evaluator import TaskAgnosticEvaluator
from hatcl.masking.stacked import StackedMask
from hatcl.masking.stage import Stage

WIDTHS = (2, 3, 2, 2, 4)  # classes of tasks 1..5 (a cil head with blocks of unequal width)


def _backbone(kind: str, batch_norm: str):
    if kind == "mlp":
        return MLPBackbone(input_shape=(1, 6, 6), hidden_dims=(12, 10), batch_norm=batch_norm)
    if kind == "cnn":
        return CNNBackbone(
            input_shape=(2, 8, 8),
            channels=(4, 6),
            kernel_sizes=(3, 2),
            fc_dims=(10,),
            conv_dropout=0.2,
            fc_dropout=0.5,
            batch_norm=batch_norm,
        )
    return ResNetBackbone(
        input_shape=(3, 8, 8), width=4, num_blocks=(1, 1), small_input=True, batch_norm=batch_norm
    )


def _model(kind: str, *, batch_norm: str = "none", heads=ClassIncrementalHeads):
    """A float64 masked model with 5 tasks of random binary masks and trained-looking norms."""
    torch.manual_seed(0)
    backbone = _backbone(kind, batch_norm)
    model = ContinualModel(
        backbone=backbone, heads=heads(input_dim=backbone.output_dim, per_task_network=True)
    ).double()
    masker = backbone.masker
    shared = heads is DomainIncrementalHead
    for task_id, width in enumerate(WIDTHS, start=1):
        model.setup_task(task_id=task_id, num_classes=4 if shared else width)
        masks = {k: (torch.rand(n) < 0.6).double() for k, n in masker.unit_counts.items()}
        masker.store.store(task_id=task_id, masks=masks)
    for module in model.modules():  # running statistics away from (0, 1)
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _inputs(kind: str) -> torch.Tensor:
    shape = {"mlp": (1, 6, 6), "cnn": (2, 8, 8), "resnet": (3, 8, 8)}[kind]
    return torch.randn(7, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _forwards(model: ContinualModel) -> list[int]:
    calls: list[int] = []
    model.backbone.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    return calls


CASES = [
    ("mlp", "none"),
    ("mlp", "shared"),
    ("cnn", "none"),
    ("cnn", "shared"),
    ("resnet", "none"),
    ("resnet", "shared"),
]


@pytest.mark.parametrize(("kind", "batch_norm"), CASES)
@pytest.mark.parametrize("chunk", [2, 3, 8])
def test_batched_logits_equal_one_forward_per_task_in_float64(kind, batch_norm, chunk):
    model = _model(kind, batch_norm=batch_norm)
    x = _inputs(kind)
    with torch.no_grad():
        reference = [model(x, task_id=t, stage=Stage.TEST).logits for t in range(1, 6)]
        calls = _forwards(model)
        batched = task_logits(model, x, seen=5, task_chunk=chunk)
    assert stacks_tasks(model)
    assert len(calls) == -(-5 // chunk)  # one forward per chunk of tasks, not per task
    assert [b.shape for b in batched] == [(7, w) for w in WIDTHS]
    for ours, theirs in zip(batched, reference):
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    # the tasks really differ (the masks matter), so equality is not trivial
    assert not torch.allclose(batched[0], batched[3][:, :2])


@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet"])
def test_batched_predictions_are_identical_to_the_loop(kind):
    model = _model(kind)
    x = _inputs(kind)
    predictions = {}
    for chunk in (1, 4):
        evaluator = TaskAgnosticEvaluator(score=max_softmax, task_chunk=chunk)
        with torch.no_grad():
            predictions[chunk] = evaluator.predict(model, x, seen=5)
    assert torch.equal(predictions[1].task, predictions[4].task)
    assert torch.equal(predictions[1].labels, predictions[4].labels)
    torch.testing.assert_close(predictions[1].logits, predictions[4].logits, rtol=0, atol=1e-12)


def test_the_dil_shared_head_is_batched_too():
    model = _model("mlp", heads=DomainIncrementalHead)
    x = _inputs("mlp")
    with torch.no_grad():
        reference = [model(x, task_id=t, stage=Stage.TEST).logits for t in range(1, 6)]
        batched = task_logits(model, x, seen=5, task_chunk=5)
    for ours, theirs in zip(batched, reference):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_per_task_batch_norms_fall_back_to_one_forward_per_task():
    model = _model("resnet", batch_norm="independent")
    x = _inputs("resnet")
    assert not stacks_tasks(model)
    with torch.no_grad():
        calls = _forwards(model)
        batched = task_logits(model, x, seen=5, task_chunk=8)
        assert len(calls) == 5
        reference = [model(x, task_id=t, stage=Stage.TEST).logits for t in range(1, 6)]
    for ours, theirs in zip(batched, reference):
        assert torch.equal(ours, theirs)


def test_an_unmasked_backbone_or_a_foreign_model_is_looped():
    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(5,), masked=False)
    heads = ClassIncrementalHeads(input_dim=5, per_task_network=True)
    assert not stacks_tasks(ContinualModel(backbone=backbone, heads=heads))
    assert not stacks_tasks(torch.nn.Linear(2, 2))


def test_a_stacked_mask_by_hand():
    masks = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    stacked = StackedMask(masks=masks, batch=2)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    expected = torch.tensor(
        [[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0], [1.0, 2.0], [3.0, 4.0]]
    )
    assert torch.equal(stacked.apply(x), expected)  # N rows: spread into the 3 blocks
    assert torch.equal(stacked.apply(expected), expected)  # 3N rows: block c times mask c
    conv = torch.arange(24.0).view(2, 2, 3, 2)  # channels in dim 1, spatial dims after
    out = stacked.apply(conv)
    assert torch.equal(out[2:4, 0], torch.zeros(2, 3, 2)) and torch.equal(out[2:4, 1], conv[:, 1])
    with pytest.raises(ValueError, match="cannot apply to 5 rows"):
        stacked.apply(torch.ones(5, 2))


def test_stored_rows_follow_the_storing_order():
    model = _model("mlp")
    masker = model.backbone.masker
    store = masker.store
    store.store(task_id=7, masks={k: torch.ones(n) for k, n in masker.unit_counts.items()})
    assert store.rows(torch.tensor([7, 1, 3])).tolist() == [5, 0, 2]


def test_task_chunk_is_validated():
    with pytest.raises(ValueError, match="cil.task_chunk must be an int >= 1"):
        CilConfig(task_chunk=0)
