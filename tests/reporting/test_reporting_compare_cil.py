"""``hatcl compare`` never pools task-aware and task-agnostic runs; it shows both accuracies."""

from __future__ import annotations

import json

import yaml

from hatcl.reporting.compare import group_runs, load_run, markdown_table


def _run(folder, *, head: str, seed: int, aa: float, aware: float | None) -> object:
    folder.mkdir(parents=True)
    config = {"algorithm": {"name": "hat"}, "head": head, "seed": seed}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"accuracy_matrix": [[aa]], "average_accuracy": aa, "bwt": None}
    if aware is not None:
        metrics |= {"average_accuracy_task_aware": aware, "average_task_id_accuracy": 0.5}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return load_run(folder)


def test_til_and_cil_runs_fall_in_separate_rows_with_both_accuracies(tmp_path):
    runs = [
        _run(tmp_path / "til1", head="til", seed=1, aa=0.9, aware=None),
        _run(tmp_path / "til2", head="til", seed=2, aa=0.8, aware=None),
        _run(tmp_path / "cil1", head="cil", seed=1, aa=0.3, aware=0.9),
    ]
    groups = group_runs(runs)
    assert sorted(g.label for g in groups) == ["hat (head=cil)", "hat (head=til)"]
    table = markdown_table(groups)
    header = "| configuration | n | AA | BWT | forgetting | FWT | capacity | AA TAw | task-id acc |"
    assert header in table
    assert "| hat (head=cil) | 1 | 0.3000 | n/a | n/a | n/a | n/a | 0.9000 | 0.5000 |" in table
    assert "| hat (head=til) | 2 | 0.8500 ± 0.0707 | n/a | n/a | n/a | n/a | n/a | n/a |" in table


def test_a_table_of_til_runs_only_keeps_its_columns(tmp_path):
    runs = [_run(tmp_path / "til", head="til", seed=1, aa=0.9, aware=None)]
    assert "AA TAw" not in markdown_table(group_runs(runs))
