"""benchmarks/kernel_count.py: ops per step are deterministic, so the targets are tests."""

import importlib.util
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location(
        "bench_kernel_count", BENCHMARKS / "kernel_count.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_counter_counts_kernels_not_views():
    kernel_count = _load()
    x = torch.ones(4, 3)
    with kernel_count.OpCounter() as counter:
        y = x.view(-1)[:5].unsqueeze(0).t()  # views only
        (y * 2).sum()
    assert dict(counter.counts) == {"mul": 1, "sum": 1}


def test_mlp_targets_of_issue_28():
    kernel_count = _load()
    rows = kernel_count.rows_for(
        "mlp",
        ["finetuning", "hat", "fgadahat"],
        ["input_weight_gradient_abs_sum", "cbp_adaptive_contribution"],
    )
    ops = {row["step"]: row["ops"] for row in rows}
    ratios = {row["step"]: row["ratio"] for row in rows}
    assert ops["plain"] == 32  # the plain fused-Adam step of the MLP (issue 28)
    assert ops["finetuning"] == ops["plain"]
    assert ratios["hat"] <= 2.0
    assert ratios["fgadahat[input_weight_gradient_abs_sum]"] <= 3.0
    assert ratios["fgadahat[cbp_adaptive_contribution]"] <= 3.5
