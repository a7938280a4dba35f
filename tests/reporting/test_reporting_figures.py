"""Run figures: every figure the run folder's files allow, and the run-wide step axis."""

from __future__ import annotations

import json

from hatcl.reporting.figures import _run_steps, write_run_figures

PNG = b"\x89PNG\r\n\x1a\n"


def _fake_run(folder, *, with_masks: bool) -> None:
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"accuracy_matrix": [[0.9], [0.8, 0.7]]}))
    tasks = [{"task": t} for t in (1, 2)]
    if with_masks:
        for t, task in enumerate(tasks, start=1):
            task["mask_usage"] = {"fc1": {"task": 0.5, "cumulative": 0.5 * t}}
            task["capacity"] = 1.0 - 0.2 * t
    (folder / "tasks.json").write_text(json.dumps({"tasks": tasks}))
    capacity = ("1.0", "0.8", "", "0.7", "0.6", "") if with_masks else ("",) * 6
    (folder / "training_curves.csv").write_text(
        "task,epoch,step,train_loss,capacity,val_accuracy\n"
        f"1,0,10,2.0,{capacity[0]},\n1,0,20,1.5,{capacity[1]},\n1,0,20,,{capacity[2]},0.8\n"
        f"2,0,10,1.9,{capacity[3]},\n2,0,20,1.2,{capacity[4]},\n2,0,25,,{capacity[5]},0.7\n"
    )


def test_hat_run_gets_all_four_figures(tmp_path):
    _fake_run(tmp_path / "run", with_masks=True)
    written = write_run_figures(tmp_path / "run")
    assert sorted(p.name for p in written) == [
        "accuracy_matrix.png",
        "average_accuracy.png",
        "capacity.png",
        "mask_usage.png",
    ]
    assert all(p.parent.name == "figures" and p.read_bytes()[:8] == PNG for p in written)


def test_run_without_masks_gets_accuracy_figures_only(tmp_path):
    _fake_run(tmp_path / "run", with_masks=False)
    names = sorted(p.name for p in write_run_figures(tmp_path / "run"))
    assert names == ["accuracy_matrix.png", "average_accuracy.png"]


def test_steps_are_the_run_wide_steps_recorded_and_tasks_end_at_their_last_step():
    curves = [
        {"task": "1", "step": "10", "capacity": "1.0"},
        {"task": "1", "step": "20", "capacity": ""},
        {"task": "2", "step": "30", "capacity": "0.7"},
        {"task": "2", "step": "45", "capacity": "0.6"},
    ]
    steps, values, boundaries = _run_steps(curves, "capacity")
    assert steps == [10, 30, 45]
    assert values == [1.0, 0.7, 0.6]
    assert boundaries == [20]
