"""Fast smoke versions of the benchmark scripts (the real measurements live in benchmarks/)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_protocol_quick_runs_aggregates_and_resumes(tmp_path, capsys):
    protocol = _load("protocol")
    page = tmp_path / "results.md"
    args = [
        "--quick",
        "--out",
        str(tmp_path / "runs"),
        "--methods",
        "finetuning",
        "hat",
        "--seeds",
        "1",
        "--jobs",
        "2",
        "--page",
        str(page),
    ]
    assert protocol.main(args) == 0
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    hat = results["permuted_digits"]["hat"]
    assert hat["bwt"] == {"mean": 0.0, "std": 0.0, "n": 1}
    assert 0.0 <= hat["aa"]["mean"] <= 1.0
    assert hat["seconds"]["mean"] > 0  # from the run's timing.json
    text = page.read_text()
    assert "| hat | " in text and "| finetuning | " in text
    assert (tmp_path / "figures" / "aa_permuted_digits.png").is_file()
    # a second invocation finds every run finished and only re-aggregates
    capsys.readouterr()
    assert protocol.main(args) == 0
    assert "ok in 0 s" in capsys.readouterr().out
    # reporting only: runs never started (seed 2) are left out, not run
    seeds = args.index("--seeds") + 1
    report = [*args[:seeds], "1", "2", *args[seeds + 1 :], "--report-only"]
    assert protocol.main(report) == 0
    again = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert again["permuted_digits"]["hat"]["aa"]["n"] == 1
    assert not (tmp_path / "runs" / "permuted_digits" / "hat" / "seed2").exists()


def test_protocol_rejects_unknown_methods(tmp_path):
    protocol = _load("protocol")
    with pytest.raises(ValueError, match="unknown method"):
        protocol.main(["--quick", "--out", str(tmp_path), "--methods", "magic"])


def test_protocol_rejects_unknown_benchmarks_and_plans_the_default_ones(tmp_path, capsys):
    protocol = _load("protocol")
    with pytest.raises(SystemExit):
        protocol.main(["--out", str(tmp_path), "--benchmarks", "split_cifar", "--report-only"])
    assert "valid: permuted_fashion_mnist" in capsys.readouterr().err
    jobs = protocol.plan(
        out=tmp_path,
        benchmarks={n: protocol.BENCHMARKS[n] for n in protocol.DEFAULT_BENCHMARKS},
        methods=["hat"],
        seeds=[1],
        threads=1,
        extra=[],
    )
    assert [j.benchmark for j in jobs] == ["permuted_fashion_mnist", "split_fashion_mnist"]
    from hatcl.cli_run import compose_config  # every job's overrides compose to a valid config

    split = compose_config([*jobs[1].overrides, f"output_dir={jobs[1].folder}"])
    assert list(split.backbone.channels) == [32, 64, 128]
    assert (split.data.scenario, split.data.num_tasks, split.algorithm.name) == ("split", 5, "hat")
    permuted = compose_config([*jobs[0].overrides, f"output_dir={jobs[0].folder}"])
    assert (permuted.data.num_tasks, list(permuted.backbone.hidden_dims)) == (20, [256, 100, 64])


def test_protocol_fwt_uses_the_independent_run_of_the_same_seed():
    protocol = _load("protocol")
    assert protocol._fwt([[0.9], [0.5, 0.8]], [[0.9], [0.4, 0.7]]) == pytest.approx(0.1)
    assert protocol._fwt([[0.9]], [[0.9]]) is None


def test_loop_overhead_smoke(monkeypatch, capsys):
    loop_overhead = _load("loop_overhead")
    monkeypatch.setattr(sys, "argv", ["loop_overhead.py", "--steps", "15", "--repeats", "1"])
    loop_overhead.main()
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert result["bare_step_ms"] > 0 and result["loop_step_ms"] > 0
    assert result["ratio"] == pytest.approx(result["loop_step_ms"] / result["bare_step_ms"])


def test_protocol_page_keeps_the_text_around_the_markers(tmp_path):
    protocol = _load("protocol")
    page = tmp_path / "results.md"
    page.write_text(f"intro\n{protocol.START}\nold\n{protocol.END}\ndiscussion\n")
    protocol.write_page(page, "| new |")
    assert page.read_text() == f"intro\n{protocol.START}\n| new |\n{protocol.END}\ndiscussion\n"


def test_fisher_cost_smoke(capsys):
    fisher_cost = _load("fisher_cost")
    results = fisher_cost.main(["--samples", "8", "--repeats", "1"])  # checks both ways agree
    assert set(results) == {"mlp", "cnn"}
    assert all(row["hatcl"] > 0 and row["per_sample"] > 0 for row in results.values())
    assert "ratio" in capsys.readouterr().out


def test_protocol_cells_show_spread_missing_values_and_no_negative_zero():
    protocol = _load("protocol")
    assert protocol._cell(None) == "n/a"
    assert protocol._cell({"mean": -0.00001, "std": 0.0, "n": 1}) == "0.0000"
    assert protocol._cell({"mean": 0.5, "std": 0.01, "n": 2}, runs=2) == "0.5000 ± 0.0100"
    assert protocol._cell({"mean": 0.5, "std": 0.0, "n": 1}, runs=3) == "0.5000 (n=1)"
    assert protocol._cell({"mean": 1.2e-4, "std": 0.0, "n": 1}, 1, "e") == "1.2e-04"


def test_optimizers_benchmark_compares_the_three_implementations(capsys):
    rows = _load("optimizers").main(["--steps", "3", "--hidden", "8"])
    by_key = {(r["optimizer"], r["impl"]): r for r in rows}
    assert set(by_key) == {
        (o, i) for o in ("adam", "adamw", "sgd") for i in ("single", "foreach", "fused")
    }
    # the single-tensor path is its own reference; foreach is bit-exact; fused within rounding
    assert all(by_key[(o, "single")]["max_diff"] == 0.0 for o in ("adam", "adamw", "sgd"))
    assert all(by_key[(o, "fused")]["max_diff"] < 1e-6 for o in ("adam", "adamw", "sgd"))


def test_scaling_table_and_long_sequence_section(tmp_path):
    scaling = _load("scaling")
    row = {
        "tasks": 5, "peak_rss_gb": 0.5, "load_seconds": 1.0, "build_seconds": 1.1,
        "build_ms_per_task": 20.0, "train_seconds_per_task": 3.0, "test_seconds_per_task": 0.5,
        "last_test_seconds": 0.9, "cpu_seconds": 20.0, "wall_seconds": 21.0,
    }  # fmt: skip
    assert "| 5 | 0.50 | 1.00 | 1.10 | 20.0 | 3.00 | 0.50 | 0.90 | 20 | 21 |" in scaling.table(
        [row]
    )
    long_sequence = _load("long_sequence")
    run = {
        "aa_per_task": [0.9, 0.8], "capacity_per_task": [1.0, 0.5], "aa": 0.8, "bwt": -0.1,
        "forgetting": 0.1, "final_capacity": 0.5, "peak_rss_gb": 0.6, "wall_seconds": 120.0,
    }  # fmt: skip
    page = tmp_path / "results.md"
    page.write_text("# Results\n")
    block = long_sequence.section({"hat": run}, (tmp_path / "a.png", tmp_path / "c.png"), page)
    assert "| hat | 0.8000 | -0.1000 | 0.1000 | 5.0e-01 | 0.60 | 2.0 |" in block
    long_sequence.write_page(page, block)
    long_sequence.write_page(page, block)  # replaced, not appended twice
    text = page.read_text()
    assert text.startswith("# Results") and text.count("## Long sequence") == 1


def test_gpu_check_without_a_gpu_says_so_and_exits_0(capsys, monkeypatch):
    gpu_check = _load("gpu_check")
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "no CUDA GPU on this machine" in capsys.readouterr().out


def test_gpu_check_machinery_on_the_cpu(capsys):
    gpu_check = _load("gpu_check")
    code = gpu_check.main(
        ["--accelerator", "cpu", "--algorithms", "hat", "--precisions", "32-true", "bf16-mixed"]
        + ["--no-compile"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hat          32-true" in out and "0.0000   0.0000" in out  # CPU vs itself: identical
    assert "hat          bf16-mixed" in out


@pytest.mark.slow
def test_vit_results_quick_runs_the_vit_from_the_command_line(tmp_path, capsys, monkeypatch):
    """The ViT rows' script: the factory imports from the repository root and a run finishes."""
    monkeypatch.chdir(BENCHMARKS.parent)  # backbone.target=examples.vit_nets:make_vit
    vit_results = _load("vit_results")
    out = tmp_path / "runs"
    args = ["--quick", "--out", str(out), "--methods", "hat", "--train-subset", "100"]
    assert vit_results.main(args) == 0
    metrics = json.loads((out / "vit_digits" / "hat" / "seed1" / "metrics.json").read_text())
    assert len(metrics["accuracy_matrix"]) == 2 and metrics["bwt"] == 0
    assert "| hat | 1 |" in capsys.readouterr().out


def test_step_floor_prints_each_step_and_the_floor(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_floor = _load("step_floor")
    monkeypatch.setattr(sys, "argv", ["step_floor.py", "--steps", "15", "--repeats", "1"])
    step_floor.main()
    lines = capsys.readouterr().out.splitlines()
    ms = {
        name: float(line.split()[-4])
        for line in lines
        for name in step_floor.MEASURES
        if line.startswith(f"  {name} ")
    }
    assert set(ms) == set(step_floor.MEASURES) and all(v > 0 for v in ms.values())
    floor = float(next(x for x in lines if x.startswith("floor")).split(": ")[1].split()[0])
    fastest_hat = min(ms["hand HAT"], ms["hatcl bare HAT"])
    expected = (fastest_hat + ms["Lightning plain loop"] - ms["plain"]) / ms["plain"]
    assert floor == pytest.approx(expected, abs=0.02)


def test_the_hand_written_hat_step_leaves_protected_weights_unchanged(monkeypatch):
    """The floor's HAT step is a real one: entries whose multiplier is 0 never move (Adam's
    moments of a zero gradient stay 0), the free ones do."""
    import torch

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_floor = _load("step_floor")
    before = step_floor.HandHAT()
    _, after, multipliers = step_floor.run_hand_hat(12)
    params = [p for layer in zip(before.layers, after.layers) for p in _pairs(*layer)]
    for (old, new), multiplier in zip(params, multipliers):
        protected = multiplier.expand_as(old) == 0
        assert protected.any() and (~protected).any()
        assert torch.equal(new.detach()[protected], old.detach()[protected])
        assert not torch.equal(new.detach()[~protected], old.detach()[~protected])


def _pairs(old_layer, new_layer):
    return [(old_layer.weight, new_layer.weight), (old_layer.bias, new_layer.bias)]
