"""Training-step time of each built-in backbone with one torch thread and with torch's default.

The measurement behind ``trainer.num_threads: null`` (hatcl's thread policy, see
:func:`hatcl.training.threads.choose_threads`): per backbone at its default size, a HAT
training step (forward, loss, backward, hooks, fused Adam) on a batch of the default size,
median over ``--steps`` steps, with 1 thread and with ``--threads`` threads (default: torch's
default, the number of cores), interleaved in rounds so both see the same machine load.

    python benchmarks/thread_policy.py [--input 1 8 8] [--batch 64] [--steps 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hatcl.algorithms.hat import HAT
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.training.optim import build_optimizer
from hatcl.training.step import run_training_step
from hatcl.training.threads import choose_threads

BACKBONES = {
    "mlp": lambda shape: MLPBackbone(input_shape=shape, hidden_dims=(256, 100, 64)),
    "cnn": lambda shape: CNNBackbone(input_shape=shape),
    "resnet18": lambda shape: ResNetBackbone(input_shape=shape, small_input=True),
}


def step_times(name: str, shape: tuple[int, ...], batch: int, steps: int, threads: int) -> list:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = BACKBONES[name](shape)
    heads = TaskIncrementalHeads(input_dim=backbone.output_dim)
    model = ContinualModel(backbone=backbone, heads=heads)
    model.setup_task(task_id=1, num_classes=10)
    algorithm = HAT()
    algorithm.on_task_start(task_id=1, model=model)
    optimizer = build_optimizer(
        model.parameters(), name="adam", lr=1e-3, weight_decay=0.0, options={}
    )
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    times = []
    for b in range(steps):
        started = time.perf_counter()
        run_training_step(
            model=model, algorithm=algorithm, optimizer=optimizer, inputs=x, targets=y,
            task_id=1, batch_index=b, num_batches=steps,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
    return times[3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=int, nargs="+", default=[1, 8, 8])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    args = parser.parse_args()
    shape = tuple(args.input)
    print(f"input {shape}, batch {args.batch}; median ms per HAT step")
    print(f"{'backbone':<10} {'params':>10} {'1 thread':>10} {f'{args.threads} threads':>11} "
          f"{'ratio':>7}  policy")  # fmt: skip
    for name in args.backbones:
        one, many = [], []
        for _ in range(args.rounds):
            one += step_times(name, shape, args.batch, args.steps, 1)
            many += step_times(name, shape, args.batch, args.steps, args.threads)
        params = sum(p.numel() for p in BACKBONES[name](shape).parameters())
        a, b = 1e3 * statistics.median(one), 1e3 * statistics.median(many)
        policy = choose_threads(None, model=BACKBONES[name](shape))
        print(f"{name:<10} {params:>10} {a:>10.2f} {b:>11.2f} {b / a:>7.2f}  {policy}")


if __name__ == "__main__":
    main()
