"""Cost of EWC's diagonal Fisher: hatcl's way against per-sample gradients for every parameter.

Times, side by side in one process, ``diagonal_fisher`` (outer-product shortcut for linear
layers, ``vmap`` per-sample gradients for the rest) and per-sample gradients of every parameter
(``vmap``), on the reference MLP 784-256-100-64 with 20 heads and on the Split CNN at the width
of the results page, and prints seconds per 1000 samples and their ratio. Checks both agree.

    python benchmarks/fisher_cost.py [--samples 1024] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from hatcl.algorithms import fisher
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads


def _mlp() -> tuple[ContinualModel, tuple[int, ...], int]:
    backbone = MLPBackbone(input_shape=(784,), hidden_dims=(256, 100, 64), masked=False)
    return _with_heads(backbone, tasks=20, classes=10), (784,), 10


def _cnn() -> tuple[ContinualModel, tuple[int, ...], int]:
    backbone = CNNBackbone(
        input_shape=(1, 28, 28), channels=(32, 64, 128), fc_dims=(512, 512), masked=False
    )
    return _with_heads(backbone, tasks=5, classes=2), (1, 28, 28), 2


def _with_heads(backbone, *, tasks: int, classes: int) -> ContinualModel:
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    for task in range(1, tasks + 1):
        model.setup_task(task_id=task, num_classes=classes)
    return model.eval()


def _median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(name: str, build, *, samples: int, repeats: int) -> dict[str, float]:
    """Seconds per 1000 samples of both ways on one model, after checking they agree."""
    torch.manual_seed(0)
    model, shape, classes = build()
    x, y = torch.randn(samples, *shape), torch.randint(0, classes, (samples,))
    names = [n for n, _ in model.named_parameters()]

    def hatcl_way():
        return fisher.diagonal_fisher(model, inputs=x, targets=y, task_id=2)

    def per_sample_everything():
        return fisher._vmap_fisher_sums(model, x, y, 2, 128, names=names)

    ours, reference = hatcl_way(), per_sample_everything()
    for key in names:
        torch.testing.assert_close(ours[key], reference[key] / samples, rtol=1e-4, atol=1e-9)
    scale = 1000 / samples
    fast = _median_seconds(hatcl_way, repeats) * scale
    slow = _median_seconds(per_sample_everything, repeats) * scale
    print(
        f"{name:>4}: diagonal_fisher {fast:7.3f} s / 1000 samples, per-sample gradients "
        f"{slow:7.3f} s, ratio {slow / fast:6.1f}x",
        flush=True,
    )
    return {"hatcl": fast, "per_sample": slow, "ratio": slow / fast}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.samples < 1 or args.repeats < 1:
        parser.error("--samples and --repeats must be at least 1")
    torch.set_num_threads(args.threads)
    return {
        name: measure(name, build, samples=args.samples, repeats=args.repeats)
        for name, build in (("mlp", _mlp), ("cnn", _cnn))
    }


if __name__ == "__main__":
    main()
