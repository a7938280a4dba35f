"""ATen ops dispatched by one training step: what a step costs on a GPU, where each op is a kernel.

A ``TorchDispatchMode`` records every ATen op of one training step except views (a view
launches no kernel): forward, loss, backward, the algorithm's hooks and the optimizer step. The
step is the third of task 2 (protection active, optimizer state created), through
``hatcl.training.step.run_training_step``; the model is the backbone with a TIL head and the
library's default optimizer (fused Adam). The reference is a plain PyTorch step of the same
network without masks (``zero_grad``, forward, cross-entropy, backward, fused Adam): on the MLP
written in plain ``torch.nn``, on the CNN and ResNet-18 the unmasked hatcl backbone and a
linear head stepped by that same bare loop. Op counts are deterministic, so they are valid on a
loaded machine and on CPU; they do not depend on the batch size.

    python benchmarks/kernel_count.py [--backbone mlp cnn resnet18] [--algorithms hat ...]
        [--importance all|nonattribution|<names>] [--top 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hatcl.algorithms.registries import ALGORITHMS
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.data.base import TaskData, TensorSplit
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.training.optim import build_optimizer
from hatcl.training.step import run_training_step

NUM_CLASSES = 10
ATTRIBUTION = "hatcl.importance.attribution"
TARGETS = {"hat": 2.0, "fgadahat": 3.0, "importance": 3.5}  # MLP targets, x plain
# network -> (input shape, batch size, backbone constructor)
NETWORKS = {
    "mlp": ((1, 28, 28), 128, lambda masked: MLPBackbone(
        input_shape=(1, 28, 28), hidden_dims=(256, 100, 64), masked=masked)),
    "cnn": ((3, 32, 32), 32, lambda masked: CNNBackbone(
        input_shape=(3, 32, 32), channels=(16, 32, 64), fc_dims=(256, 256), masked=masked)),
    "resnet18": ((3, 32, 32), 8, lambda masked: ResNetBackbone(
        input_shape=(3, 32, 32), small_input=True, masked=masked)),
}  # fmt: skip


class OpCounter(TorchDispatchMode):
    """Counts every ATen op dispatched inside the ``with`` block, views excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _batches(network: str, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    shape, batch, _ = NETWORKS[network]
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(batch, *shape, generator=generator),
            torch.randint(0, NUM_CLASSES, (batch,), generator=generator),
        )
        for _ in range(count)
    ]


def _task_data(task_id: int, x: torch.Tensor, y: torch.Tensor) -> TaskData:
    split = TensorSplit(x=x, y=y)
    return TaskData(
        task_id=task_id, train=split, val=split, test=split, num_classes=NUM_CLASSES,
        class_labels=tuple(range(NUM_CLASSES)),
    )  # fmt: skip


def count_algorithm_step(network: str, algorithm_name: str, options: dict) -> collections.Counter:
    """Ops of the third step of task 2 of ``algorithm_name`` (built with ``options``)."""
    torch.manual_seed(0)
    algorithm = ALGORITHMS.get(algorithm_name)(**options)
    backbone = NETWORKS[network][2](algorithm.uses_masks)
    heads = TaskIncrementalHeads(input_dim=backbone.output_dim)
    model = ContinualModel(backbone=backbone, heads=heads)
    algorithm.configure_model(model=model)
    batches = _batches(network, 3)
    counter = OpCounter()
    for task_id in (1, 2):
        model.setup_task(task_id=task_id, num_classes=NUM_CLASSES)
        algorithm.on_task_start(task_id=task_id, model=model)
        optimizer = build_optimizer(
            algorithm.trainable_parameters(model), name="adam", lr=1e-3, weight_decay=0.0,
            options={},
        )  # fmt: skip
        model.train()
        for index, (x, y) in enumerate(batches):
            last = task_id == 2 and index == len(batches) - 1
            with counter if last else _nothing():
                run_training_step(
                    model=model, algorithm=algorithm, optimizer=optimizer, inputs=x, targets=y,
                    task_id=task_id, batch_index=index, num_batches=len(batches),
                )  # fmt: skip
        if task_id == 1:
            x = torch.cat([b[0] for b in batches])
            y = torch.cat([b[1] for b in batches])
            algorithm.on_task_end(task_id=1, model=model, task_data=_task_data(1, x, y))
    return counter.counts


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def _plain_network(network: str) -> torch.nn.Module:
    if network == "mlp":
        dims = [784, 256, 100, 64]
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(dims[-1], NUM_CLASSES))
    backbone = NETWORKS[network][2](False)

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = torch.nn.Linear(backbone.output_dim, NUM_CLASSES)
            backbone.setup_task(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x, task_id=1, stage=_train_stage()).features)

    return Plain()


def _train_stage():
    from hatcl.masking.stage import Stage

    return Stage.TRAIN


def count_plain_step(network: str) -> collections.Counter:
    """Ops of the third step of a plain PyTorch step of the same network (fused Adam)."""
    torch.manual_seed(0)
    model = _plain_network(network).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    counter = OpCounter()
    batches = _batches(network, 3)
    for index, (x, y) in enumerate(batches):
        with counter if index == len(batches) - 1 else _nothing():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return counter.counts


def _importance_names(selection: list[str]) -> list[str]:
    if selection == ["all"]:
        return list(IMPORTANCE_TYPES.names())
    if selection == ["nonattribution"]:
        return [
            name for name in IMPORTANCE_TYPES.names()
            if not IMPORTANCE_TYPES.entries()[IMPORTANCE_TYPES.names().index(name)]
            .target.startswith(ATTRIBUTION)
        ]  # fmt: skip
    return [IMPORTANCE_TYPES.validate(name, parameter="--importance") for name in selection]


def rows_for(network: str, algorithms: list[str], importances: list[str]) -> list[dict]:
    """One row per step kind: name, op count, ratio to plain, the most frequent ops."""
    plain = count_plain_step(network)
    total_plain = sum(plain.values())
    rows = [{"step": "plain", "ops": total_plain, "ratio": 1.0, "top": plain.most_common()}]
    runs = [(name, name, {}) for name in algorithms if name != "fgadahat"]
    if "fgadahat" in algorithms:
        runs += [(f"fgadahat[{imp}]", "fgadahat", {"importance_type": imp}) for imp in importances]
    for label, name, options in runs:
        counts = count_algorithm_step(network, name, options)
        total = sum(counts.values())
        rows.append(
            {"step": label, "ops": total, "ratio": total / total_plain,
             "top": counts.most_common()}
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbone", nargs="+", default=["mlp", "cnn", "resnet18"], choices=sorted(NETWORKS)
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        default=None,
        help="algorithm names (default: every registered algorithm)",
    )
    parser.add_argument(
        "--importance",
        nargs="+",
        default=["all"],
        help="FG-AdaHAT importance types: all, nonattribution or names",
    )
    parser.add_argument("--top", type=int, default=4, help="most frequent ops shown per row")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()  # fmt: skip
    algorithms = args.algorithms or list(ALGORITHMS.names())
    for name in algorithms:
        ALGORITHMS.validate(name, parameter="--algorithms")
    importances = _importance_names(args.importance)
    torch.set_num_threads(1)
    result = {}
    for network in args.backbone:
        rows = rows_for(network, algorithms, importances)
        result[network] = rows
        print(f"\n{network}: ATen ops per training step (views excluded), ratio to plain")
        for row in rows:
            top = ", ".join(f"{op} {n}" for op, n in row["top"][: args.top])
            print(f"  {row['step']:<62} {row['ops']:5d} {row['ratio']:6.2f}x  {top}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
