"""The class-incremental head: offsets, all-seen-class logits, global labels, TIL-equal blocks."""

from __future__ import annotations

import torch

from hatcl.heads.heads import ClassIncrementalHeads, TaskIncrementalHeads


def _heads(*, per_task_network: bool, sizes=(4, 3, 3)) -> ClassIncrementalHeads:
    torch.manual_seed(0)
    heads = ClassIncrementalHeads(input_dim=5, per_task_network=per_task_network)
    for task_id, size in enumerate(sizes, start=1):
        heads.setup_task(task_id=task_id, num_classes=size)
    return heads


def test_offsets_count_the_classes_of_earlier_tasks():
    heads = _heads(per_task_network=False)
    assert [heads.offset(t) for t in (1, 2, 3)] == [0, 4, 7]


def test_a_shared_network_sees_every_seen_class_in_task_order_and_global_labels():
    heads = _heads(per_task_network=False)
    features = torch.randn(6, 5)
    logits = heads(features, task_id=2)  # the task id does not select a block
    assert logits.shape == (6, 10)
    blocks = [heads.head(t)(features) for t in (1, 2, 3)]
    assert torch.equal(logits, torch.cat(blocks, dim=1))
    assert torch.equal(heads.block(logits, 2), blocks[1])
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    assert heads.training_targets(targets, task_id=3).tolist() == [7, 8, 9, 7, 8, 9]
    per_sample = heads.training_targets(targets, task_id=3, task_ids=torch.tensor([1, 2, 3] * 2))
    assert per_sample.tolist() == [0, 5, 9, 0, 5, 9]


def test_a_per_task_network_trains_on_its_block_and_own_labels_like_til():
    cil = _heads(per_task_network=True)
    torch.manual_seed(0)
    til = TaskIncrementalHeads(input_dim=5)
    for task_id, size in enumerate((4, 3, 3), start=1):
        til.setup_task(task_id=task_id, num_classes=size)
    pairs = zip(cil.state_dict().values(), til.state_dict().values())
    assert all(torch.equal(a, b) for a, b in pairs)
    features = torch.randn(3, 5)
    assert torch.equal(cil(features, task_id=2), til(features, task_id=2))
    targets = torch.tensor([0, 2, 1])
    assert torch.equal(cil.training_targets(targets, task_id=2), targets)


def test_which_heads_need_the_task_id_at_test_time():
    from hatcl.heads.heads import DomainIncrementalHead

    assert TaskIncrementalHeads.task_id_at_test
    assert not DomainIncrementalHead.task_id_at_test
    assert not ClassIncrementalHeads.task_id_at_test
