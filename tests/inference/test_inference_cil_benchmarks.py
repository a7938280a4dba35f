"""Smoke versions of the class-incremental benchmark scripts (fast sizes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_inference_cost_times_the_loop_and_the_batched_forward():
    cost = _load("cil_inference_cost")
    row = cost.measure(3, batch=16, repeats=1, task_chunk=2)
    assert row["tasks"] == 3
    assert all(row[key] > 0 for key in ("task_aware_s", "looped_s", "batched_s"))


def test_the_table_goes_between_the_named_markers(tmp_path):
    table = _load("cil_table")
    page = tmp_path / "page.md"
    page.write_text(
        "a\n<!-- cil table: begin -->\nold\n<!-- cil table: end -->\n"
        "b\n<!-- cil cnn table: begin -->\nold\n<!-- cil cnn table: end -->\n"
    )
    table.write_page(page, "cnn rows\n", marker="cil cnn table")
    assert page.read_text() == (
        "a\n<!-- cil table: begin -->\nold\n<!-- cil table: end -->\n"
        "b\n<!-- cil cnn table: begin -->\ncnn rows\n<!-- cil cnn table: end -->\n"
    )
    with pytest.raises(ValueError, match="no <!-- other: begin -->"):
        table.write_page(page, "x\n", marker="other")
