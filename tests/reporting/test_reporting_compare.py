"""``hatcl compare`` on small fake run folders, against hand-computed means and stds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hatcl.cli import main
from hatcl.reporting.compare import compare, find_runs, group_runs, load_run, markdown_table

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(folder: Path, *, algorithm: str, seed: int, matrix, fwt=None, lr=0.001) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"algorithm:\n  name: {algorithm}\n  s_max: 400\nseed: {seed}\n"
        f"output_dir: {folder}\noptimizer:\n  lr: {lr}\ntrainer:\n  loggers: [csv]\n"
    )
    last = matrix[-1]
    metrics = {
        "accuracy_matrix": matrix,
        "average_accuracy": sum(last) / len(last),
        "average_accuracy_per_task": [sum(r) / len(r) for r in matrix],
        "bwt": last[0] - matrix[0][0],
        "forgetting": matrix[0][0] - last[0],
    }
    if fwt is not None:
        metrics["fwt"] = fwt
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture()
def sweep(tmp_path) -> Path:
    root = tmp_path / "multirun"
    # hat: AA = 0.8 and 0.6; BWT = -0.1 and -0.3; FWT = 0.05 and 0.15
    _run(root / "0", algorithm="hat", seed=1, matrix=[[0.9], [0.8, 0.8]], fwt=0.05)
    _run(root / "1", algorithm="hat", seed=2, matrix=[[0.7], [0.4, 0.8]], fwt=0.15)
    # finetuning: one run, AA = 0.5, BWT = -0.5, no FWT
    _run(root / "2", algorithm="finetuning", seed=1, matrix=[[1.0], [0.5, 0.5]])
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_groups_pool_seeds_and_the_table_holds_hand_computed_values(sweep):
    groups = group_runs([load_run(p) for p in find_runs([sweep])])
    assert [(g.label, len(g.runs)) for g in groups] == [("hat", 2), ("finetuning", 1)]
    table = markdown_table(groups).splitlines()
    std = math.sqrt(2 * 0.1**2)  # sample std of {0.8, 0.6}, of {-0.1, -0.3}, of {0.05, 0.15}/2
    assert table[0] == "| configuration | n | AA | BWT | forgetting | FWT | capacity |"
    assert table[2] == (
        f"| hat | 2 | 0.7000 ± {std:.4f} | -0.2000 ± {std:.4f} | 0.2000 ± {std:.4f} "
        f"| 0.1000 ± {std / 2:.4f} | n/a |"
    )
    assert table[3] == "| finetuning | 1 | 0.5000 | -0.5000 | 0.5000 | n/a | n/a |"


def test_label_names_the_differing_key(tmp_path):
    a = _run(tmp_path / "a", algorithm="hat", seed=1, matrix=[[0.5]], lr=0.1)
    b = _run(tmp_path / "b", algorithm="hat", seed=1, matrix=[[0.7]], lr=0.01)
    groups = group_runs([load_run(a), load_run(b)])
    assert [g.label for g in groups] == ["hat (optimizer.lr=0.1)", "hat (optimizer.lr=0.01)"]


def test_cli_prints_and_writes_table_and_figure(sweep, tmp_path, capsys):
    output = tmp_path / "out" / "table.md"
    assert main(["compare", str(sweep), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "| hat | 2 | 0.7000 ± 0.1414" in printed
    assert output.read_text().splitlines()[2].startswith("| hat | 2 | 0.7000")
    figure = output.with_name("table_aa.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_run_folders_given_one_by_one(sweep, tmp_path, capsys):
    output = tmp_path / "t.md"
    assert main(["compare", str(sweep / "0"), str(sweep / "2"), "--output", str(output)]) == 0
    assert "| hat | 1 | 0.8000 | -0.1000 | 0.1000 | 0.0500 | n/a |" in output.read_text()


def test_cli_errors_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default ./comparison.md
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert main(["compare", str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err
    assert main(["compare"]) == 2


def test_help_list_and_compare_stay_torch_free(sweep, tmp_path):
    code = (
        "import sys; from hatcl.cli import main; main(['--help']); main(['list']); "
        f"main(['compare', {str(sweep)!r}, '--output', {str(tmp_path / 't.md')!r}]); "
        "print('TORCH', 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "TORCH False False" in out
    assert "logger:" in out and "tensorboard" in out


def test_runs_sharing_a_seed_are_flagged_and_get_no_std(tmp_path):
    _run(tmp_path / "a", algorithm="hat", seed=1, matrix=[[0.9], [0.8, 0.8]])
    _run(tmp_path / "b", algorithm="hat", seed=1, matrix=[[0.7], [0.4, 0.8]])
    table, _, _ = compare([tmp_path], output=tmp_path / "table.md")
    row = next(line for line in table.splitlines() if line.startswith("| hat"))
    # AA: mean of (0.8 + 0.8) / 2 = 0.8 and (0.4 + 0.8) / 2 = 0.6 is 0.7; no std
    assert row == "| hat (same seed: no std) | 2 | 0.7000 | -0.2000 | 0.2000 | n/a | n/a |"
    assert "share seed 1" in table and str(tmp_path / "a") in table
