"""benchmarks/gpu_check.py: kernels per step and the compiled step, checked on the CPU."""

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", BENCHMARKS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_cpu_count_is_the_top_level_aten_ops():
    gpu_check = _load()
    a, b = torch.randn(4, 3), torch.randn(3, 2)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        ((a @ b) + 1).relu().sum()
    # matmul, add, relu, sum: what the line calls (their inner ATen calls are not counted)
    assert gpu_check.count_kernels(profiler.events(), cuda=False) == 4


def test_cuda_count_is_the_device_activities():
    gpu_check = _load()
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    events = [
        SimpleNamespace(name="aten::mm", device_type=cpu, cpu_parent=None),
        SimpleNamespace(name="volta_sgemm_128x64_nn", device_type=cuda, cpu_parent=None),
        SimpleNamespace(name="aten::add", device_type=cpu, cpu_parent=None),
        SimpleNamespace(name="vectorized_elementwise_kernel", device_type=cuda, cpu_parent=None),
        SimpleNamespace(name="Memcpy HtoD (Pinned -> Device)", device_type=cuda, cpu_parent=None),
    ]
    assert gpu_check.count_kernels(events, cuda=True) == 3


@pytest.mark.slow
def test_cpu_run_prints_kernels_and_the_compiled_step(capsys):
    gpu_check = _load()
    code = gpu_check.main(
        [
            "--accelerator",
            "cpu",
            "--algorithms",
            "hat",
            "--precisions",
            "32-true",
            "--compile-backend",
            "aot_eager",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    header = next(line for line in out.splitlines() if line.startswith("algorithm "))
    assert header.split()[-7:] == ["kern/step", "eager", "ms", "comp", "ms", "comp", "kern"]
    row = next(line for line in out.splitlines() if line.startswith("hat          32-true"))
    fields = row.split()
    assert fields[5:7] == ["0.0000", "0.0000"]  # CPU vs CPU reference: same accuracy and masks
    kernels, eager_ms, compiled_ms, compiled_kernels = (float(v) for v in fields[-4:])
    for value in (kernels, eager_ms, compiled_ms, compiled_kernels):
        assert math.isfinite(value) and value > 0
    # a HAT step of the MLP is far more than a plain step's handful of ops (forward, loss,
    # backward, Adam over six parameters) and the profiler counts whole ops, not fractions
    assert kernels > 30 and (kernels * len(gpu_check.PROFILED)).is_integer()
    assert gpu_check.compile_lib.BACKEND == "inductor"  # the option is undone afterwards
