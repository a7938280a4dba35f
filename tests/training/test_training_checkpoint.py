"""Checkpoints: atomic writes, weights_only loading, RNG round trips, refused resumes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hatcl.cli_run import run_command
from hatcl.training import checkpoint as ckpt
from hatcl.training import resume_check

TINY = [
    "trainer.max_epochs=1",
    "data.num_tasks=2",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
]


def test_save_is_atomic_when_the_write_crashes(tmp_path, monkeypatch):
    path = ckpt.checkpoint_path(tmp_path, 1)
    ckpt.save_checkpoint(path, {"format": ckpt.CHECKPOINT_FORMAT, "value": torch.tensor([1.0])})
    real_save = torch.save

    def crash_midway(obj, handle):  # writes some bytes, then the "machine" fails
        real_save({"format": ckpt.CHECKPOINT_FORMAT, "value": torch.zeros(1000)}, handle)
        handle.truncate(100)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ckpt.save_checkpoint(path, {"format": ckpt.CHECKPOINT_FORMAT})
    with pytest.raises(RuntimeError, match="simulated crash"):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 2), {"format": 1})
    monkeypatch.undo()
    # the previous checkpoint is intact, nothing partial is named like a checkpoint
    assert torch.equal(ckpt.load_checkpoint(path)["value"], torch.tensor([1.0]))
    assert sorted(p.name for p in path.parent.iterdir()) == ["task_1.ckpt"]
    assert ckpt.latest_checkpoint(tmp_path) == path


def test_a_killed_write_leaves_only_a_hidden_temporary(tmp_path, monkeypatch):
    ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 1), {"format": 1})

    def killed_before_rename(source, target):  # the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, 2), {"format": 1})
    monkeypatch.undo()
    (tmp_path / "checkpoints" / ".task_3.ckpt.x1y2.tmp").write_bytes(b"partial")
    assert ckpt.latest_checkpoint(tmp_path).name == "task_1.ckpt"


def test_latest_checkpoint_orders_numerically(tmp_path):
    for task_id in (2, 10, 9):
        ckpt.save_checkpoint(ckpt.checkpoint_path(tmp_path, task_id), {"format": 1})
    assert ckpt.latest_checkpoint(tmp_path).name == "task_10.ckpt"
    assert ckpt.latest_checkpoint(tmp_path / "nothing") is None


def test_rng_states_round_trip_through_weights_only_load(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    path = ckpt.save_checkpoint(tmp_path / "rng.ckpt", {"format": 1, "rng": ckpt.rng_states()})
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    ckpt.set_rng_states(ckpt.load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_run_checkpoint_holds_masks_metrics_and_loads_weights_only(tmp_path):
    run = tmp_path / "run"
    overrides = [*TINY, "trainer.loggers=[csv,tensorboard]", "trainer.figures=true"]
    assert run_command([*overrides, f"output_dir={run}"]) == 0
    assert list((run / "logs" / "tensorboard" / "version_0").glob("events.out.tfevents.*"))
    assert len(list((run / "figures").glob("*.png"))) == 4
    envelope = torch.load(run / "checkpoints" / "task_2.ckpt", weights_only=True)
    assert envelope["tag"] == "hatcl-checkpoint" and envelope["format"] == 2
    payload = ckpt.load_checkpoint(run / "checkpoints" / "task_2.ckpt")
    assert payload["completed_tasks"] == 2
    assert payload["model"]["backbone.masker.store.task_ids"].tolist() == [1, 2]
    assert payload["model"]["backbone.masker.store.masks_fc1"].shape[0] == 2
    assert {"heads.heads.1.weight", "heads.heads.2.weight"} <= set(payload["model"])
    assert len(payload["metrics"]["accuracy_matrix"]) == 2
    assert payload["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    first = ckpt.load_checkpoint(run / "checkpoints" / "task_1.ckpt")
    assert first["model"]["backbone.masker.store.task_ids"].tolist() == [1]


def test_config_differences_name_every_key():
    saved = "seed: 1\noutput_dir: a\nresume: null\ntrainer:\n  max_epochs: 1\n  batch_size: 64\n"
    now = "seed: 2\noutput_dir: b\nresume: a\ntrainer:\n  max_epochs: 1\n  batch_size: 32\nx: 1\n"
    assert resume_check.config_differences(saved, now) == [
        "seed (saved 1, now 2)",
        "trainer.batch_size (saved 64, now 32)",
        "x (saved None, now 1)",
    ]


def test_resume_refuses_another_configuration(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 1\ntrainer:\n  max_epochs: 1\n")
    with pytest.raises(ValueError, match=r"differing keys: seed \(saved 1, now 2\)"):
        resume_check.check_resumable(run, config_text="seed: 2\ntrainer:\n  max_epochs: 1\n")
    same = "seed: 1\ntrainer:\n  max_epochs: 1\n"
    assert resume_check.check_resumable(run, config_text=same) == run


def test_cli_resume_with_other_overrides_exits_2_naming_keys(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_command([*TINY, f"output_dir={run}"]) == 0
    (run / "metrics.json").unlink()  # as if interrupted after its last checkpoint
    capsys.readouterr()
    assert run_command([*TINY, "seed=7", "trainer.batch_size=32", f"resume={run}"]) == 2
    error = capsys.readouterr().err
    assert "seed (saved 1, now 7)" in error
    assert "trainer.batch_size (saved 64, now 32)" in error
    assert "output_dir" not in error.split("differing keys")[1]


def test_resume_of_a_finished_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_command([*TINY, f"output_dir={run}"]) == 0
    assert run_command([*TINY, f"resume={run}"]) == 2
    assert "finished run" in capsys.readouterr().err
