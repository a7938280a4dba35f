"""``hatcl.load`` and ``hatcl export`` on a finished tiny run.

Oracles: the run's own ``metrics.json`` (last accuracy-matrix row), ``Run.predict`` (the masked
model), accuracy counted here from the exported logits, and a fresh interpreter in which any
import of hatcl fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import hatcl
from hatcl.cli import main
from hatcl.cli_run import compose_config, run_from_config
from hatcl.product.export import task_network
from hatcl.product.prune import count_parameters

pytestmark = pytest.mark.slow

TINY = [
    "algorithm=hat",
    "data.num_tasks=2",
    "data.train_subset=300",
    "trainer.max_epochs=2",
    "trainer.figures=false",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
]

BLOCKED_LOAD = textwrap.dedent(
    """
    import sys

    class NoHatcl:
        def find_spec(self, name, path=None, target=None):
            if name == "hatcl" or name.startswith("hatcl."):
                raise ImportError("hatcl is not installed here")

    sys.meta_path.insert(0, NoHatcl())
    import torch

    try:
        import hatcl  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker failed")
    x = torch.load(sys.argv[2], weights_only=True)
    logits = torch.export.load(sys.argv[1]).module()(x)
    torch.save(logits, sys.argv[3])
    print(sorted(name for name in sys.modules if name.startswith("hatcl")))
    """
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("product") / "run"
    run_from_config(compose_config([*TINY, f"output_dir={folder}"]))
    return folder


def test_load_reproduces_the_last_metrics_row(run_dir):
    run = hatcl.load(run_dir)
    expected = json.loads((run_dir / "metrics.json").read_text())["accuracy_matrix"][-1]
    assert run.num_tasks == 2 and run.config.algorithm.name == "hat"
    assert run.test() == expected


def test_exported_program_runs_without_hatcl_and_equals_predict(run_dir, tmp_path):
    run = hatcl.load(run_dir)
    final = run.metrics["accuracy_matrix"][-1]
    for task_id in (1, 2):
        split = run.data.tasks[task_id - 1].test
        x, y = split.x[:], split.y[:]
        reference = run.predict(x, task_id=task_id)
        path = run.export(task_id, tmp_path / f"task{task_id}.pt2")
        torch.save(x, tmp_path / "x.pt")
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                BLOCKED_LOAD,
                str(path),
                str(tmp_path / "x.pt"),
                str(tmp_path / "out.pt"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"  # no hatcl module was loaded
        logits = torch.load(tmp_path / "out.pt", weights_only=True)
        torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)
        correct = int((logits.argmax(1) == y).sum())
        assert correct / len(y) == final[task_id - 1]
        assert count_parameters(run.network(task_id)) < count_parameters(
            task_network(run.model, task_id=task_id, prune=False)
        )


def test_predict_needs_the_task_id_of_a_til_run(run_dir):
    run = hatcl.load(run_dir)
    x = run.data.tasks[0].test.x[:3]
    with pytest.raises(ValueError, match="head 'til'.*task_id=1..2"):
        run.predict(x)
    with pytest.raises(ValueError, match="1..2"):
        run.predict(x, task_id=3)


def test_unfinished_or_damaged_runs_are_refused_naming_the_file(run_dir, tmp_path):
    unfinished = shutil.copytree(run_dir, tmp_path / "unfinished")
    (unfinished / "metrics.json").unlink()
    with pytest.raises(ValueError, match="metrics.json.*unfinished"):
        hatcl.load(unfinished)
    damaged = shutil.copytree(run_dir, tmp_path / "damaged")
    checkpoint = damaged / "checkpoints" / "task_2.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(ValueError, match="task_2.ckpt"):
        hatcl.load(damaged)
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        hatcl.load(tmp_path / "nothing")


def test_export_command(run_dir, tmp_path, capsys):
    out = tmp_path / "t1.pt"
    assert (
        main(["export", str(run_dir), "--task", "1", "--out", str(out), "--format", "state_dict"])
        == 0
    )
    state = torch.load(out, weights_only=True)
    run = hatcl.load(run_dir)
    assert sum(t.numel() for t in state.values()) == count_parameters(run.network(1))
    assert "parameters kept" in capsys.readouterr().out
    # refused before any work, exit 2: existing file, unknown format, task out of range
    assert main(["export", str(run_dir), "--task", "1", "--out", str(out)]) == 2
    assert (
        main(
            [
                "export",
                str(run_dir),
                "--task",
                "1",
                "--out",
                str(tmp_path / "a"),
                "--format",
                "onnx",
            ]
        )
        == 2
    )
    assert main(["export", str(run_dir), "--task", "9", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "exported, state_dict" in err and "1..2" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_benchmark_checks_every_task(run_dir, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "export.py"
    spec = importlib.util.spec_from_file_location("export_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    out = tmp_path / "export.json"
    assert benchmark.main([str(run_dir), "--out", str(out), "--repeats", "1"]) == 0
    rows = json.loads(out.read_text())[str(run_dir)]
    assert [row["task"] for row in rows] == [1, 2]
    assert all(row["params_after"] < row["params_before"] for row in rows)


def test_a_float64_run_loads_and_exports_in_float64(tmp_path):
    folder = tmp_path / "run64"
    run_from_config(
        compose_config(
            [*TINY, "trainer.max_epochs=1", "trainer.precision=64-true", f"output_dir={folder}"]
        )
    )
    run = hatcl.load(folder)
    assert run.test() == run.metrics["accuracy_matrix"][-1]
    split = run.data.tasks[1].test
    reference = run.predict(split.x[:], task_id=2)
    assert reference.dtype == torch.float64
    program = torch.export.load(run.export(2, tmp_path / "t2.pt2")).module()
    logits = program(split.x[:].double())
    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-10)
