"""ImportanceStore: accumulator (sum and count), task rows, summative, state_dict round trips."""

import io

import pytest
import torch
from torch.testing import assert_close

from hatcl.importance.store import ImportanceStore


def _store():
    store = ImportanceStore()
    store.ensure_keys({"a": 2, "b": 3}, like=torch.zeros(()))
    return store


def test_accumulator_average_and_base():
    store = _store()
    store.observe({"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 2.0, 4.0])})
    store.observe({"a": torch.tensor([3.0, 1.0]), "b": torch.tensor([2.0, 2.0, 0.0])})
    average = store.task_average(base=0.5)
    assert_close(average["a"], torch.tensor([2.5, 1.0]))
    assert_close(average["b"], torch.tensor([1.5, 2.5, 2.5]))
    store.reset_accumulator()
    assert float(store.steps) == 0
    assert_close(store.task_average(base=0.25)["a"], torch.tensor([0.25, 0.25]))


def test_accumulator_reduction_matches_one_process():
    """Summing sums and counts over two 'processes' gives the mean over all their steps."""
    first, second = _store(), _store()
    first.observe({"a": torch.tensor([1.0, 2.0]), "b": torch.zeros(3)})
    second.observe({"a": torch.tensor([3.0, 6.0]), "b": torch.zeros(3)})
    second.observe({"a": torch.tensor([5.0, 1.0]), "b": torch.zeros(3)})
    partner = dict(second.named_buffers())

    def reduce(tensor):
        for name, buffer in first.named_buffers():
            if buffer is tensor:
                tensor.add_(partner[name])

    for tensor in first.accumulator_tensors():
        reduce(tensor)
    assert_close(first.task_average(base=0.0)["a"], torch.tensor([3.0, 3.0]))


def test_task_rows_replace_and_order():
    store = _store()
    store.store_task(task_id=2, importances={"a": torch.tensor([2.0, 2]), "b": torch.zeros(3)})
    store.store_task(task_id=1, importances={"a": torch.tensor([1.0, 1]), "b": torch.zeros(3)})
    store.store_task(task_id=2, importances={"a": torch.tensor([7.0, 7]), "b": torch.ones(3)})
    assert store.task_ids.tolist() == [2, 1]
    history = store.task_importances()["a"]
    assert [h.tolist() for h in history] == [[1.0, 1.0], [7.0, 7.0]]
    assert_close(store.task_importance(2)["b"], torch.ones(3))
    with pytest.raises(ValueError, match="task 3"):
        store.task_importance(3)


def test_state_dict_round_trip_into_a_fresh_store_weights_only():
    store = _store()
    store.observe({"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([1.0, 2.0, 3.0])})
    store.store_task(task_id=1, importances={"a": torch.tensor([0.5, 1]), "b": torch.ones(3)})
    store.set_summative({"a": torch.tensor([4.0, 5.0]), "b": torch.tensor([1.0, 2.0, 3.0])})
    buffer = io.BytesIO()
    torch.save(store.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = ImportanceStore()
    fresh.load_state_dict(state, strict=True)
    assert fresh.keys == ("a", "b")
    for name, value in store.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    # a store that already has buffers of another task count resizes on load
    other = _store()
    other.load_state_dict(state, strict=True)
    assert other.state_dict()["tasks_a"].shape == (1, 2)
