"""A whole permuted Fashion-MNIST run in plain PyTorch (no hatcl), and hatcl's runs beside it.

The reference does what a hatcl run of the same setting does for its accuracies, written
directly: the uint8 IDX source kept as is, each task a fixed pixel permutation (the first
task permuted too) applied per batch with the normalisation, 10 % of the training set held out
as in hatcl (not trained on), an MLP 784-256-256 with a linear head per task, fused Adam 1e-3,
shuffled batches, one pass per epoch, and after each task the test accuracy of every seen task.
No masks, validation, loggers, checkpoints or figures.

``--side-by-side`` then times, in alternation, this script as a subprocess and
``hatcl run`` (figures, loggers and checkpoints off, one thread, the same data, sizes and seed)
for HAT, AdaHAT and FG-AdaHAT, and prints process wall time and peak memory (max RSS) with the
ratio hatcl / plain per method.

    python benchmarks/plain_reference.py [--tasks 5] [--epochs 1] [--batch 64]
    python benchmarks/plain_reference.py --side-by-side [--repeats 2] [--methods hat fgadahat]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> torch.Tensor:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    return torch.from_numpy(array.copy())


def plain_run(*, tasks: int, epochs: int, batch: int, seed: int) -> list[list[float]]:
    """Train the task sequence; return the accuracy matrix (row t: after task t)."""
    torch.manual_seed(seed)
    x_train = read_idx(ROOT / "train-images-idx3-ubyte.gz").reshape(-1, 784)
    y_train = read_idx(ROOT / "train-labels-idx1-ubyte.gz").long()
    x_test = read_idx(ROOT / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    y_test = read_idx(ROOT / "t10k-labels-idx1-ubyte.gz").long()
    keep = torch.randperm(len(x_train))[: int(0.9 * len(x_train))]  # 10 % held out
    x_train, y_train = x_train[keep], y_train[keep]
    scaled = x_train.float() / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())
    permutations = [torch.randperm(784) for _ in range(tasks)]
    body = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU()
    )
    heads = torch.nn.ModuleList()

    def inputs(raw: torch.Tensor, task: int) -> torch.Tensor:
        return (raw[:, permutations[task]].float() / 255.0 - mean) / std

    matrix = []
    for task in range(tasks):
        heads.append(torch.nn.Linear(256, 10))
        params = [*body.parameters(), *heads[task].parameters()]
        optimizer = torch.optim.Adam(params, lr=1e-3, fused=True)
        for _ in range(epochs):
            order = torch.randperm(len(x_train))
            for start in range(0, len(order), batch):
                index = order[start : start + batch]
                optimizer.zero_grad(set_to_none=True)
                logits = heads[task](body(inputs(x_train[index], task)))
                F.cross_entropy(logits, y_train[index]).backward()
                optimizer.step()
        with torch.no_grad():
            row = []
            for seen in range(task + 1):
                correct = 0
                for start in range(0, len(x_test), 1024):
                    part = inputs(x_test[start : start + 1024], seen)
                    predicted = heads[seen](body(part)).argmax(1)
                    correct += int((predicted == y_test[start : start + 1024]).sum())
                row.append(correct / len(x_test))
        matrix.append(row)
    return matrix


def timed(command: list[str]) -> tuple[float, float]:
    """Process wall time (s) and peak memory (MB, max RSS of the child) of ``command``."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {child.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024.0


def side_by_side(args: argparse.Namespace) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    os.environ.update(env)
    plain_cmd = [sys.executable, __file__, "--tasks", str(args.tasks), "--epochs",
                 str(args.epochs), "--batch", str(args.batch), "--quiet"]  # fmt: skip
    overrides = [
        "data=permuted_fashion_mnist", "backbone=mlp", "backbone.hidden_dims=[256,256]",
        f"data.num_tasks={args.tasks}", f"trainer.max_epochs={args.epochs}",
        f"trainer.batch_size={args.batch}", "trainer.figures=false", "trainer.loggers=[]",
        "trainer.checkpoints=false", "trainer.enable_progress_bar=false",
        "trainer.num_threads=1",
    ]  # fmt: skip
    times: dict[str, list[tuple[float, float]]] = {"plain": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            times["plain"].append(timed(plain_cmd))
            for method in args.methods:
                out = Path(folder) / f"{method}_{repeat}"
                cmd = [sys.executable, "-m", "hatcl.cli", "run", f"algorithm={method}",
                       f"output_dir={out}", *overrides]  # fmt: skip
                times.setdefault(method, []).append(timed(cmd))
    plain_s = statistics.median(t for t, _ in times["plain"])
    plain_mb = max(m for _, m in times["plain"])
    print(f"{'run':<10} {'wall s':>8} {'runs':>20} {'hatcl/plain':>12} {'peak MB':>8} {'+MB':>6}")
    for name, values in times.items():
        wall = statistics.median(t for t, _ in values)
        runs = ", ".join(f"{t:.1f}" for t, _ in values)
        peak = max(m for _, m in values)
        print(
            f"{name:<10} {wall:>8.1f} {runs:>20} {wall / plain_s:>12.2f} {peak:>8.0f} "
            f"{peak - plain_mb:>+6.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--side-by-side", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["hat", "adahat", "fgadahat"])
    args = parser.parse_args()
    if args.side_by_side:
        side_by_side(args)
        return
    torch.set_num_threads(1)
    matrix = plain_run(tasks=args.tasks, epochs=args.epochs, batch=args.batch, seed=args.seed)
    if not args.quiet:
        for row in matrix:
            print(" ".join(f"{a:.3f}" for a in row), f"(AA {sum(row) / len(row):.4f})")


if __name__ == "__main__":
    main()
