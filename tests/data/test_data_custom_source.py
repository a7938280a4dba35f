"""data=custom records exactly what ran: keys it ignores are refused; random Datasets refused."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from hatcl.cli import main
from hatcl.data.sources.custom import ACCEPTED_KEYS, CustomDataConfig, build_custom_data

TASKS = textwrap.dedent(
    """
    import torch
    from torch.utils.data import Dataset


    class Fixed(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return torch.full((3,), float(i)), i % 2


    class RandomFlip(Fixed):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return (x.flip(0) if torch.rand(()) < 0.5 else x) + torch.rand(3), y


    def make_tasks(kind="fixed", num_tasks=2):
        cls = Fixed if kind == "fixed" else RandomFlip
        return [{"train": cls(), "test": Fixed()} for _ in range(num_tasks)]
    """
)


@pytest.fixture
def tasks_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "my_tasks:make_tasks"
    sys.modules.pop("my_tasks", None)


@pytest.mark.parametrize("key", ["num_tasks", "train_subset", "test_subset", "scenario_typo"])
def test_a_key_of_the_built_in_sources_is_refused_naming_the_accepted_ones(key):
    mapping = {"source": "custom", "scenario": "custom", "target": "m:f", key: 2}
    with pytest.raises(ValueError, match=f"does not use data.{key}") as caught:
        CustomDataConfig.from_mapping(mapping)
    assert all(name in str(caught.value) for name in ACCEPTED_KEYS)


def test_the_accepted_keys_build(tasks_module):
    config = CustomDataConfig.from_mapping(
        {"target": tasks_module, "options": {"num_tasks": 3}, "val_fraction": 0.25}
    )
    data = build_custom_data(config, seed=0)
    assert len(data.tasks) == 3 and len(data.tasks[0].val.y) == 3  # 25 % of 12


def test_the_command_line_refuses_an_ignored_key_before_any_work(tasks_module, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the run started although data.num_tasks is ignored by data=custom")

    monkeypatch.setattr("hatcl.training.runner.run_plan", no_work)
    args = ["run", "data=custom", f"data.target={tasks_module}", "+data.num_tasks=2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "data=custom does not use data.num_tasks" in err and "data.options" in err


def test_a_dataset_with_a_random_transform_is_refused_pointing_to_augment(tasks_module):
    config = CustomDataConfig.from_mapping(
        {"target": tasks_module, "options": {"kind": "random"}}
    )
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="task 1 'train'.*read again.*data.augment"):
        build_custom_data(config, seed=0)


def test_a_deterministic_dataset_is_read_as_it_is(tasks_module):
    config = CustomDataConfig.from_mapping({"target": tasks_module, "val_fraction": 0.0})
    task = build_custom_data(config, seed=0).tasks[0]
    assert torch.equal(task.train.x[5], torch.full((3,), 5.0))
    assert task.train.y.tolist() == [i % 2 for i in range(12)]
