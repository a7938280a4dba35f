"""torch's optimizer implementations on CPU, side by side: single-tensor, foreach and fused.

For Adam, AdamW and SGD (momentum 0.9) on the parameters of an MLP (default 784-256-256-10),
every implementation takes the same sequence of gradients from the same start; the benchmark
prints the median time of one ``optimizer.step()`` and the largest absolute difference of the
parameters from the single-tensor path after all steps (exact = 0).

    python benchmarks/optimizers.py [--steps 300] [--threads 1] [--hidden 256 256] [--json out]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

IMPLEMENTATIONS = {
    "single": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}
OPTIMIZERS = {
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}),
    "sgd": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
}


def parameters(hidden: list[int], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    dims = [784, *hidden, 10]
    shapes = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return [torch.randn(s, generator=generator) * 0.05 for s in shapes]


def gradients(start: list[torch.Tensor], steps: int) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [[torch.randn(p.shape, generator=generator) * 1e-2 for p in start] for _ in range(steps)]


def run(name: str, kind: str, start, grads) -> tuple[float, list[torch.Tensor]]:
    optimizer_class, options = OPTIMIZERS[name]
    params = [torch.nn.Parameter(p.clone()) for p in start]
    optimizer = optimizer_class(params, **options, **IMPLEMENTATIONS[kind])
    times = []
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g
        started = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times), [p.detach() for p in params]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = parameters(args.hidden)
    grads = gradients(start, args.steps)
    rows = []
    print(f"{'optimizer':<8} {'impl':<8} {'step ms':>8} {'vs single':>9} {'max |dp|':>10}")
    for name in OPTIMIZERS:
        reference_time, reference = run(name, "single", start, grads)
        for kind in IMPLEMENTATIONS:
            seconds, params = run(name, kind, start, grads)
            diff = max(float((a - b).abs().max()) for a, b in zip(params, reference))
            rows.append({"optimizer": name, "impl": kind, "ms": seconds * 1e3, "max_diff": diff})
            print(
                f"{name:<8} {kind:<8} {seconds * 1e3:8.3f} {seconds / reference_time:9.2f} "
                f"{diff:10.2e}"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(rows, stream, indent=2)
    return rows


if __name__ == "__main__":
    main()
