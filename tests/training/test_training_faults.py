"""Faults on real machines: damaged and foreign checkpoints, a garbage config.yaml, other files.

One finished 3-task run is made once; each test copies it, breaks something, and resumes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from hatcl.cli import main
from hatcl.cli_run import run_command as main_with_callbacks
from hatcl.training import checkpoint as ckpt
from hatcl.training.run_callbacks import RunCallback

THREE_TASKS = [
    "algorithm=hat",
    "trainer.max_epochs=1",
    "data.num_tasks=3",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[csv]",
    "trainer.figures=false",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "finished"
    assert main(["run", *THREE_TASKS, f"output_dir={run}"]) == 0
    return run


@pytest.fixture
def interrupted(tmp_path, finished) -> Path:
    """The finished run as if killed after its last checkpoint (no metrics.json)."""
    run = tmp_path / "interrupted"
    shutil.copytree(finished, run)
    (run / "metrics.json").unlink()
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _random(path: Path) -> None:
    path.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
        .to(torch.uint8)
        .numpy()
        .tobytes()
    )


def _flip_payload_byte(path: Path) -> None:
    """A valid torch file whose payload no longer matches its checksum."""
    envelope = torch.load(path, weights_only=True)
    envelope["payload"][len(envelope["payload"]) // 2] ^= 0xFF
    torch.save(envelope, path)


DAMAGE = {
    "truncated": (_truncate, "cannot be read: truncated or corrupt"),
    "zero bytes": (_zero, "is empty (0 bytes)"),
    "random bytes": (_random, "cannot be read: truncated or corrupt"),
    "altered payload": (_flip_payload_byte, "fails the SHA-256 checksum"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_file_is_named_by_load(tmp_path, finished, case):
    path = tmp_path / "task_3.ckpt"
    shutil.copy(finished / "checkpoints" / "task_3.ckpt", path)
    damage, problem = DAMAGE[case]
    damage(path)
    with pytest.raises(ckpt.CheckpointError) as caught:
        ckpt.load_checkpoint(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


@pytest.mark.parametrize("case", DAMAGE)
def test_resume_falls_back_to_the_newest_intact_checkpoint(interrupted, finished, capsys, case):
    damage, problem = DAMAGE[case]
    damage(interrupted / "checkpoints" / "task_3.ckpt")
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"resume={interrupted}"]) == 0
    err = capsys.readouterr().err
    assert "task_3.ckpt" in err and problem in err
    assert "resuming from task_2.ckpt" in err and "task 3 included" in err
    assert "Traceback" not in err
    # task 3 was trained again from task 2's state: the same result as the uninterrupted run
    assert (interrupted / "metrics.json").read_bytes() == (finished / "metrics.json").read_bytes()
    assert (interrupted / "checkpoints" / "task_3.ckpt.damaged").exists()
    assert json.loads((interrupted / "timing.json").read_text())["resumed_after_task"] == 2


def test_every_checkpoint_damaged_restarts_at_task_1(interrupted, finished, capsys):
    for path in (interrupted / "checkpoints").glob("task_*.ckpt"):
        _zero(path)
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"resume={interrupted}"]) == 0
    err = capsys.readouterr().err
    assert err.count("is empty (0 bytes)") == 3 and "starts again at task 1" in err
    assert (interrupted / "metrics.json").read_bytes() == (finished / "metrics.json").read_bytes()


@pytest.mark.parametrize(
    ("other", "mismatch"),
    [
        (["algorithm=finetuning"], "written by algorithm Finetuning, this run uses HAT"),
        (["backbone.hidden_dims=[32,16]"], "other tensor shapes"),
    ],
)
def test_a_foreign_checkpoint_is_refused_naming_file_and_mismatch(
    tmp_path, interrupted, capsys, other, mismatch
):
    foreign = tmp_path / "foreign"
    overrides = [*THREE_TASKS, "data.num_tasks=1", *other, f"output_dir={foreign}"]
    assert main(["run", *overrides]) == 0
    target = interrupted / "checkpoints" / "task_3.ckpt"
    shutil.copy(foreign / "checkpoints" / "task_1.ckpt", target)
    before = sorted(p.name for p in interrupted.rglob("*"))
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"resume={interrupted}"]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and mismatch in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in interrupted.rglob("*")) == before


@pytest.mark.parametrize(
    "garbage", ["{{{ not: yaml", "just a string\n", "- a\n- list\n", "", "\x00\x01binary"]
)
def test_a_garbage_config_yaml_is_named(interrupted, capsys, garbage):
    (interrupted / "config.yaml").write_text(garbage)
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"resume={interrupted}"]) == 2
    err = capsys.readouterr().err
    assert str(interrupted / "config.yaml") in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_non_empty_folder_that_holds_no_run_is_left_alone(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "figures").mkdir(parents=True)
    (folder / "tasks.json").write_text("my own file")
    (folder / "figures" / "accuracy_matrix.png").write_bytes(b"my figure")
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"output_dir={folder}"]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "not empty and holds no hatcl run" in err
    assert (folder / "tasks.json").read_text() == "my own file"
    assert sorted(p.name for p in folder.rglob("*")) == [
        "accuracy_matrix.png",
        "figures",
        "tasks.json",
    ]


def test_an_empty_folder_is_accepted(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["run", *THREE_TASKS, "data.num_tasks=1", f"output_dir={folder}"]) == 0
    assert (folder / "metrics.json").is_file()


def test_checkpoint_envelope_round_trip_and_format_tag(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "x.ckpt", {"format": 2, "value": torch.arange(3)})
    envelope = torch.load(path, weights_only=True)
    assert envelope["tag"] == ckpt.CHECKPOINT_TAG and envelope["format"] == ckpt.CHECKPOINT_FORMAT
    assert envelope["size"] == envelope["payload"].numel()
    assert torch.equal(ckpt.load_checkpoint(path)["value"], torch.arange(3))
    torch.save({"format": 1, "value": 1}, tmp_path / "old.ckpt")  # a pre-envelope checkpoint
    with pytest.raises(ckpt.CheckpointError, match="is not a hatcl checkpoint"):
        ckpt.load_checkpoint(tmp_path / "old.ckpt")
    envelope["format"] = 99
    torch.save(envelope, tmp_path / "future.ckpt")
    with pytest.raises(ckpt.CheckpointError, match="has format 99; this hatcl reads format 2"):
        ckpt.load_checkpoint(tmp_path / "future.ckpt")


class _InterruptAt(RunCallback):
    def on_step(self, *, task_id: int, step: int) -> None:
        if (task_id, step) == (2, 5):
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_damaged_in_task_checkpoint_restarts_its_task(tmp_path, finished, capsys):
    run = tmp_path / "in_task"
    assert (
        main_with_callbacks([*THREE_TASKS, f"output_dir={run}"], callbacks=[_InterruptAt()]) == 143
    )
    _truncate(run / "checkpoints" / "in_task_2.ckpt")
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"resume={run}"]) == 0
    err = capsys.readouterr().err
    assert "in_task_2.ckpt" in err and "task 2 is trained again from its beginning" in err
    assert (run / "metrics.json").read_bytes() == (finished / "metrics.json").read_bytes()


def test_ctrl_c_during_start_up_exits_130_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    run = tmp_path / "startup"

    def interrupted_while_loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("hatcl.training.runner.build_run_data", interrupted_while_loading)
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"output_dir={run}"]) == 130
    out, err = capsys.readouterr()
    assert err.strip() == "hatcl run: interrupted" and "Traceback" not in out + err
    assert not run.exists()  # the folder made for the run is gone: nothing to resume


class _FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes (a disk that fills up)."""

    def __init__(self, handle, room: int = 1000) -> None:
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def test_disk_full_while_checkpointing_names_file_cause_and_resume(
    tmp_path, finished, monkeypatch, capsys
):
    run = tmp_path / "full_disk"
    real_fdopen = os.fdopen

    def fdopen(descriptor, *args, **kwargs):
        handle = real_fdopen(descriptor, *args, **kwargs)
        name = os.readlink(f"/proc/self/fd/{descriptor}")
        return _FullDisk(handle) if ".task_2.ckpt." in name else handle

    monkeypatch.setattr(ckpt.os, "fdopen", fdopen)
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, f"output_dir={run}"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    target = run / "checkpoints" / "task_2.ckpt"
    assert f"could not write {target}: No space left on device" in err
    assert f"resume with: hatcl run {' '.join(THREE_TASKS)} resume={run}" in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["task_1.ckpt"]
    assert ckpt.load_checkpoint(run / "checkpoints" / "task_1.ckpt")["completed_tasks"] == 1
    monkeypatch.undo()
    assert main(["run", *THREE_TASKS, f"resume={run}"]) == 0
    assert (run / "metrics.json").read_bytes() == (finished / "metrics.json").read_bytes()


def test_a_lost_permission_on_an_output_file_exits_1_naming_it(tmp_path, monkeypatch, capsys):
    run = tmp_path / "no_permission"

    def refused(folder, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder / "tasks.json"))

    monkeypatch.setattr("hatcl.training.outputs.write_outputs", refused)
    capsys.readouterr()
    assert main(["run", *THREE_TASKS, "data.num_tasks=1", f"output_dir={run}"]) == 1
    err = capsys.readouterr().err
    assert f"could not write {run / 'tasks.json'}: Permission denied" in err
    assert "Traceback" not in err and "task_1.ckpt" in err and f"resume={run}" in err
