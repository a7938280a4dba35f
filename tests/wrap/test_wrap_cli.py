"""``hatcl run`` with a user's network (backbone=custom) and a user's tasks (data=custom)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hatcl.cli_run import run_command
from hatcl.data.sources.custom import CustomDataConfig, build_custom_data

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TINY = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
]


def make_tasks(*, num_tasks: int = 2, samples: int = 40):
    """Tensors per task: 2 classes, the class is the sign of the first feature (shifted)."""
    generator = torch.Generator().manual_seed(0)
    tasks = []
    for task in range(num_tasks):

        def split(n, feature=task):
            x = torch.randn(n, 6, generator=generator)
            return x, (x[:, feature] > 0).long()

        tasks.append({"train": split(samples), "test": split(samples // 2)})
    return tasks


def wrong_return(**kwargs):
    return {"train": None}


def test_a_custom_backbone_runs_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    code = run_command(
        [
            "backbone=custom",
            "backbone.target=plain_nets:make_cnn",
            "+backbone.channels=[3,4]",
            "algorithm=hat",
            "data=split_digits",
            "data.num_tasks=2",
            "data.train_subset=60",
            f"output_dir={tmp_path / 'run'}",
            *TINY,
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["accuracy_matrix"]) == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("backbone.target=no_such_module:net", "cannot import module 'no_such_module'"),
        ("backbone.target=plain_nets:nothing", "'nothing' in 'plain_nets' is not found"),
        ("backbone.target=plain_nets", "must be an import path 'package.module:function'"),
        ("backbone.target=plain_nets:not_a_module", "returned a str; it must return a torch"),
    ],
)
def test_bad_backbone_targets_are_clear_errors(tmp_path, monkeypatch, capsys, override, message):
    monkeypatch.syspath_prepend(str(HERE))
    args = ["backbone=custom", override, f"output_dir={tmp_path / 'run'}", *TINY]
    assert run_command(args) == 2
    assert message in capsys.readouterr().err
    if "returned" not in message:  # refused before any work: no run folder
        assert not (tmp_path / "run").exists()


def test_custom_data_follows_its_contract():
    config = CustomDataConfig(target="test_wrap_cli:make_tasks", options={"num_tasks": 3})
    data = build_custom_data(config, seed=1)
    assert data.input_shape == (6,) and len(data.tasks) == 3
    assert [len(t.train) + len(t.val) for t in data.tasks] == [40, 40, 40]
    assert [len(t.val) for t in data.tasks] == [4, 4, 4]  # val_fraction 0.1 held out
    assert data.tasks[2].num_classes == 2
    bad = CustomDataConfig(target="test_wrap_cli:wrong_return")
    with pytest.raises(TypeError, match="returned a dict; it must return a list"):
        build_custom_data(bad, seed=1)
    with pytest.raises(ValueError, match="cannot import module 'nowhere'"):
        build_custom_data(CustomDataConfig(target="nowhere:f"), seed=1)


def test_custom_data_and_backbone_run_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    code = run_command(
        [
            "backbone=custom",
            "backbone.target=plain_nets:make_mlp",
            "data=custom",
            "data.target=test_wrap_cli:make_tasks",
            "+data.options.num_tasks=2",
            "algorithm=hat",
            f"output_dir={tmp_path / 'run'}",
            *TINY,
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["accuracy_matrix"]) == 2


def test_the_own_model_example_runs_and_keeps_earlier_tasks():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_model.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    rows = [line.split(": ")[1].split() for line in result.stdout.splitlines()]
    assert len(rows) == 5 and len(rows[-1]) == 5
    assert all(row[0] == rows[0][0] for row in rows)  # task 1 never forgotten
    assert float(rows[-1][-1]) > 0.6


NORMED = ["backbone=custom", "backbone.target=plain_nets:make_normed_mlp", "algorithm=hat"]


def test_unmaskable_parameters_are_refused_naming_the_command_line_keys(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.syspath_prepend(str(HERE))
    assert run_command([*NORMED, f"output_dir={tmp_path / 'run'}", *TINY]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "['norm.bias', 'norm.weight', 'scale']" in err
    assert "backbone.unmasked=per_task" in err and "backbone.exclude=[...]" in err
    assert "exclude=[...] to" not in err.replace("backbone.exclude=[...]", "")


def test_a_bad_unmasked_mode_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(HERE))
    args = [*NORMED, "backbone.unmasked=copy", f"output_dir={tmp_path / 'run'}", *TINY]
    assert run_command(args) == 2
    assert "backbone.unmasked must be one of refuse, per_task, freeze" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_per_task_copies_keep_earlier_tasks_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    args = [
        *NORMED,
        "backbone.unmasked=per_task",
        "data=split_digits",
        "data.num_tasks=3",
        "data.train_subset=60",
        f"output_dir={tmp_path / 'run'}",
        *TINY,
    ]
    assert run_command(args) == 0
    matrix = json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy_matrix"]
    assert matrix[2][0] == matrix[1][0] == matrix[0][0] and matrix[2][1] == matrix[1][1]


VIT = [
    "backbone=custom",
    "backbone.target=transformer_nets:make_vit",
    "backbone.unmasked=per_task",
    "data=split_digits",
    "data.num_tasks=3",
    "data.train_subset=150",
    "data.test_subset=60",
    "optimizer.lr=0.01",
    "trainer.batch_size=32",
    "trainer.max_epochs=4",
    "trainer.num_threads=1",
]


@pytest.mark.parametrize(
    "algorithm",
    [
        ["algorithm=hat"],
        ["algorithm=fgadahat", "algorithm.importance_type=gradient_x_activation_abs"],
    ],
    ids=["hat", "fgadahat"],
)
@pytest.mark.slow
def test_a_vit_learns_split_digits_from_the_command_line(tmp_path, monkeypatch, algorithm):
    monkeypatch.syspath_prepend(str(HERE))
    args = [*VIT, *algorithm, f"output_dir={tmp_path / 'run'}", *TINY[1:]]
    assert run_command(args) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    matrix = metrics["accuracy_matrix"]
    assert len(matrix) == 3 and sum(matrix[-1]) / 3 > 0.6  # chance is 0.5
    if algorithm == ["algorithm=hat"]:
        assert matrix[2][0] == matrix[1][0] == matrix[0][0] and matrix[2][1] == matrix[1][1]
        assert metrics["bwt"] == 0.0


@pytest.mark.slow
def test_the_own_transformer_example_runs_and_learns():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_transformer.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=True,
    )
    rows = [[float(a) for a in line.split(": ")[1].split()] for line in result.stdout.splitlines()]
    assert [len(row) for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0][0] > 0.75  # chance is 0.5
    assert sum(rows[-1]) / 5 > 0.6
