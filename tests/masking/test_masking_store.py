"""MaskStore and HATMasker: buffers, union, sums, state_dict round trips, init modes."""

import pytest
import torch

from hatcl.masking.mask_store import MaskStore
from hatcl.masking.masker import HATMasker
from hatcl.masking.registries import INIT_MODES
from hatcl.masking.stage import Stage


def _store_two_tasks() -> MaskStore:
    store = MaskStore(unit_counts={"fc1": 3, "fc2": 2})
    store.store(task_id=1, masks={"fc1": torch.tensor([1.0, 0, 0]), "fc2": torch.tensor([1.0, 0])})
    store.store(task_id=2, masks={"fc1": torch.tensor([1.0, 1, 0]), "fc2": torch.tensor([0.0, 0])})
    return store


def test_cumulative_is_union_and_summative_counts_tasks():
    store = _store_two_tasks()
    assert torch.equal(store.cumulative()["fc1"], torch.tensor([1.0, 1, 0]))
    assert torch.equal(store.summative()["fc1"], torch.tensor([2.0, 1, 0]))
    assert torch.equal(store.cumulative()["fc2"], torch.tensor([1.0, 0]))
    assert store.stored_task_ids() == (1, 2)
    assert torch.equal(store.mask(2)["fc1"], torch.tensor([1.0, 1, 0]))


def test_state_dict_round_trip_into_an_empty_store():
    store = _store_two_tasks()
    fresh = MaskStore(unit_counts={"fc1": 3, "fc2": 2})
    fresh.load_state_dict(store.state_dict())
    assert fresh.stored_task_ids() == (1, 2)
    for key in ("fc1", "fc2"):
        assert torch.equal(fresh.mask(1)[key], store.mask(1)[key])
        assert torch.equal(fresh.cumulative()[key], store.cumulative()[key])
        assert torch.equal(fresh.summative()[key], store.summative()[key])
    assert set(store.state_dict()) >= {"task_ids", "masks_fc1", "cumulative_fc1", "summative_fc2"}


def test_storing_a_task_again_replaces_its_row():
    store = _store_two_tasks()
    store.store(task_id=1, masks={"fc1": torch.tensor([0.0, 0, 1]), "fc2": torch.tensor([0.0, 1])})
    assert store.stored_task_ids() == (1, 2)
    assert torch.equal(store.cumulative()["fc1"], torch.tensor([1.0, 1, 1]))
    assert torch.equal(store.summative()["fc2"], torch.tensor([0.0, 1]))


def test_task_ids_must_be_positive_ints_and_unknown_tasks_are_named():
    store = _store_two_tasks()
    with pytest.raises(TypeError, match="positive ints"):
        store.mask("1")
    with pytest.raises(ValueError, match=r"no mask stored for task 3; stored tasks: \(1, 2\)"):
        store.mask(3)


def test_masker_stages_and_stored_binary_mask():
    masker = HATMasker(unit_counts={"fc1": 3})
    with torch.no_grad():
        masker.embeddings["fc1"].copy_(torch.tensor([2.0, -1.0, 0.0]))
    train = masker.masks(stage=Stage.TRAIN, task_id=1, scale=0.5)["fc1"]
    torch.testing.assert_close(train, torch.sigmoid(torch.tensor([1.0, -0.5, 0.0])))
    stored = masker.store_current(task_id=1)["fc1"]
    assert torch.equal(stored, torch.tensor([1.0, 0.0, 0.0]))  # 1[e > 0]: e = 0 is off
    assert torch.equal(masker.masks(stage=Stage.TEST, task_id=1, scale=None)["fc1"], stored)
    with pytest.raises(ValueError, match="needs a mask scale"):
        masker.masks(stage=Stage.VALIDATION, task_id=1, scale=None)


@pytest.mark.parametrize(
    ("mode", "low", "high"),
    [("U-11", -1.0, 1.0), ("U01", 0.0, 1.0), ("U-10", -1.0, 0.0)],
)
def test_uniform_init_modes_stay_in_their_range(mode, low, high):
    masker = HATMasker(unit_counts={"fc1": 500})
    masker.reset_embeddings(init_mode=mode)
    values = masker.embeddings["fc1"].detach()
    assert values.min() >= low and values.max() <= high
    assert values.max() - values.min() > 0.5 * (high - low)


def test_normal_and_last_init_modes():
    torch.manual_seed(0)
    masker = HATMasker(unit_counts={"fc1": 4000})
    masker.reset_embeddings(init_mode="N01")
    values = masker.embeddings["fc1"].detach().clone()
    assert abs(float(values.mean())) < 0.06 and abs(float(values.std()) - 1.0) < 0.06
    masker.reset_embeddings(init_mode="last")
    assert torch.equal(masker.embeddings["fc1"].detach(), values)
    assert set(INIT_MODES.names()) == {"N01", "U-11", "U01", "U-10", "last"}
