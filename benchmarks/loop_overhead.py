"""Overhead of hatcl's training loop over a bare training step of the same model and batch.

Measures, side by side in one process, the median time of
- a bare HAT step: zero grads, forward, loss (+ sparsity term), backward, gradient adjustment,
  embedding compensation, optimizer step;
- one step of hatcl's loop (Lightning, manual optimization): time between consecutive batch
  starts, so everything the loop does between steps is included;
- a plain PyTorch step of the same network without masks (``nn.Sequential`` MLP + linear head,
  cross-entropy, Adam with ``fused=True`` and, for reference, single-tensor Adam);
and prints the ratios loop / bare (target: <= 1.3) and loop / plain fused (target: <= 1.6).
All hatcl steps use the library's default optimizer implementation (fused Adam).

``--backbone cnn|resnet18`` measures that network instead of the MLP (the plain step is then the
unmasked hatcl backbone with a linear head, stepped by the same bare loop); ``--compile``
compiles the hatcl backbone (``trainer.compile``) and the plain network with ``torch.compile``
and prints compiled bare HAT step / compiled plain step (the Lightning loop is not timed then).

    python benchmarks/loop_overhead.py [--steps 200] [--repeats 3] [--threads 1] [--json out.json]
        [--backbone mlp|cnn|resnet18] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import lightning as L
import torch

from hatcl.algorithms.hat import HAT
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.config import OptimizerConfig
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.batches import TensorBatches
from hatcl.training.compile import compile_backbone
from hatcl.training.module import ContinualModule
from hatcl.training.optim import build_optimizer
from hatcl.training.step import run_training_step

BATCH = 128
DESCRIPTIONS = {"mlp": "MLP 784-256-100-64", "cnn": "CNN (built-in)", "resnet18": "ResNet-18"}
INPUT = (1, 28, 28)
HIDDEN = (256, 100, 64)
NETWORK = {"name": "mlp", "compile": False}  # set by main()
NETWORKS = {
    "mlp": lambda masked: MLPBackbone(input_shape=INPUT, hidden_dims=HIDDEN, masked=masked),
    "cnn": lambda masked: CNNBackbone(input_shape=INPUT, masked=masked),
    "resnet18": lambda masked: ResNetBackbone(input_shape=INPUT, small_input=True, masked=masked),
}


def build(seed: int) -> tuple[ContinualModel, HAT]:
    torch.manual_seed(seed)
    backbone = NETWORKS[NETWORK["name"]](True)
    heads = TaskIncrementalHeads(input_dim=backbone.output_dim)
    model = ContinualModel(backbone=backbone, heads=heads)
    model.setup_task(task_id=1, num_classes=10)
    algorithm = HAT()
    algorithm.on_task_start(task_id=1, model=model)
    return model, algorithm


def data(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps * BATCH, *INPUT, generator=generator)
    y = torch.randint(0, 10, (steps * BATCH,), generator=generator)
    return x, y


def bare_step_times(steps: int) -> list[float]:
    model, algorithm = build(0)
    if NETWORK["compile"]:
        compile_backbone(model)
    optimizer = build_optimizer(
        model.parameters(), name="adam", lr=1e-3, weight_decay=0.0, options={}
    )
    x, y = data(steps)
    times = []
    for b, (inputs, targets) in enumerate(TensorBatches(x, y, batch_size=BATCH)):
        started = time.perf_counter()
        run_training_step(
            model=model,
            algorithm=algorithm,
            optimizer=optimizer,
            inputs=inputs,
            targets=targets,
            task_id=1,
            batch_index=b,
            num_batches=steps,
        )
        times.append(time.perf_counter() - started)
    return times


class _PlainBackbone(torch.nn.Module):
    """An unmasked hatcl backbone and a linear head, called like a plain network."""

    def __init__(self, backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.output_dim, 10)
        backbone.setup_task(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x, task_id=1, stage=Stage.TRAIN).features)


def plain_model() -> torch.nn.Module:
    """The same network and head as plain PyTorch modules, no masks."""
    torch.manual_seed(0)
    if NETWORK["name"] != "mlp":
        plain = _PlainBackbone(NETWORKS[NETWORK["name"]](False))
    else:
        plain = _plain_mlp()
    if NETWORK["compile"]:
        plain.compile()
    return plain


def _plain_mlp() -> torch.nn.Module:
    dims = [int(torch.Size(INPUT).numel()), *HIDDEN]
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(HIDDEN[-1], 10))


def plain_step_times(steps: int, *, fused: bool) -> list[float]:
    """A plain PyTorch step of the same MLP and head, no masks: the physical reference."""
    model = plain_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused, foreach=False)
    x, y = data(steps)
    times = []
    for inputs, targets in TensorBatches(x, y, batch_size=BATCH):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def _phases_of_hat_step(model, algorithm, optimizer, inputs, targets, b, steps) -> dict:
    """One HAT step in the order of ``run_training_step``, each phase timed on its own."""
    import torch.nn.functional as F

    from hatcl.algorithms.base import StepContext
    from hatcl.masking.stage import Stage

    clock, out = time.perf_counter, {}
    t = clock()
    scale = algorithm.training_scale(batch_index=b, num_batches=steps)
    optimizer.zero_grad(set_to_none=True)
    out["scale + zero_grad"], t = clock() - t, clock()
    output = model(inputs, task_id=1, stage=Stage.TRAIN, scale=scale)
    out["forward (masked)"], t = clock() - t, clock()
    context = StepContext(
        model=model, task_id=1, batch_index=b, num_batches=steps, scale=scale,
        inputs=inputs, targets=targets, output=output,
    )  # fmt: skip
    loss = F.cross_entropy(output.logits, targets)
    out["cross-entropy"], t = clock() - t, clock()
    for term in algorithm.loss_terms(context).values():
        loss = loss + term
    out["loss_terms (sparsity)"], t = clock() - t, clock()
    loss.backward()
    out["backward"], t = clock() - t, clock()
    algorithm.adjust_gradients(context)
    out["adjust_gradients"], t = clock() - t, clock()
    algorithm.compensate_gradients(context)
    out["compensate_gradients"], t = clock() - t, clock()
    optimizer.step()
    out["optimizer step"], t = clock() - t, clock()
    algorithm.after_optimizer_step(context)
    out["after_optimizer_step"] = clock() - t
    return out


def _phases_of_plain_step(model, optimizer, inputs, targets) -> dict:
    clock, out = time.perf_counter, {}
    t = clock()
    optimizer.zero_grad(set_to_none=True)
    logits = model(inputs)
    out["plain forward"], t = clock() - t, clock()
    torch.nn.functional.cross_entropy(logits, targets).backward()
    out["plain loss + backward"], t = clock() - t, clock()
    optimizer.step()
    out["plain optimizer step (fused)"] = clock() - t
    return out


def breakdown(steps: int) -> dict[str, float]:
    """Median ms of each phase of the bare HAT step and of the plain fused step, interleaved."""
    model, algorithm = build(0)
    optimizer = build_optimizer(
        model.parameters(), name="adam", lr=1e-3, weight_decay=0.0, options={}
    )
    plain = plain_model()
    plain_optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3, fused=True)
    x, y = data(steps)
    phases: dict[str, list[float]] = {}
    for b, (inputs, targets) in enumerate(TensorBatches(x, y, batch_size=BATCH)):
        timed = _phases_of_hat_step(model, algorithm, optimizer, inputs, targets, b, steps)
        timed |= _phases_of_plain_step(plain, plain_optimizer, inputs, targets)
        for name, seconds in timed.items():
            if b >= 10:
                phases.setdefault(name, []).append(seconds)
    return {name: 1e3 * statistics.median(values) for name, values in phases.items()}


class _BatchStarts(L.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())


def times_between_batches(module: L.LightningModule, loader) -> list[float]:
    """One epoch of ``module`` on ``loader`` in a bare Lightning trainer: the time between
    consecutive batch starts (everything the loop does per step)."""
    starts = _BatchStarts()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[starts],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader)
    return [b - a for a, b in zip(starts.starts[:-1], starts.starts[1:])]


def loop_step_times(steps: int) -> list[float]:
    model, algorithm = build(0)
    module = ContinualModule(model=model, algorithm=algorithm, optimizer=OptimizerConfig())
    x, y = data(steps)
    return times_between_batches(module, TensorBatches(x, y, batch_size=BATCH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the result to this file")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time each phase of the bare HAT step"
    )
    parser.add_argument("--backbone", default="mlp", choices=sorted(NETWORKS))
    parser.add_argument("--batch", type=int, default=None, help="128 (mlp), 32 (cnn), 16 (resnet)")
    parser.add_argument(
        "--compile", action="store_true", help="compiled HAT step / compiled plain step"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    NETWORK.update(name=args.backbone, compile=args.compile)
    global BATCH
    BATCH = args.batch or {"mlp": 128, "cnn": 32, "resnet18": 16}[args.backbone]
    if args.compile:
        return compiled_main(args)
    bare, loop, plain, plain_single = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so all see the same machine load
        bare.extend(bare_step_times(args.steps)[10:])
        loop.extend(loop_step_times(args.steps)[10:])
        plain.extend(plain_step_times(args.steps, fused=True)[10:])
        plain_single.extend(plain_step_times(args.steps, fused=False)[10:])
    result = {
        "model": f"{DESCRIPTIONS[args.backbone]}, HAT, batch {BATCH}",
        "threads": args.threads,
        "bare_step_ms": 1e3 * statistics.median(bare),
        "loop_step_ms": 1e3 * statistics.median(loop),
        "plain_fused_step_ms": 1e3 * statistics.median(plain),
        "plain_single_tensor_step_ms": 1e3 * statistics.median(plain_single),
    }
    result["ratio"] = result["loop_step_ms"] / result["bare_step_ms"]
    result["loop_over_plain_fused"] = result["loop_step_ms"] / result["plain_fused_step_ms"]
    print(json.dumps(result, indent=2))
    print(f"loop step / bare step = {result['ratio']:.3f} (target <= 1.3)")
    print(f"loop step / plain fused step = {result['loop_over_plain_fused']:.3f} (target <= 1.6)")
    if args.breakdown:
        result["bare_step_phases_ms"] = breakdown(args.steps)
        for name, ms in result["bare_step_phases_ms"].items():
            print(f"  {name:<24} {ms:7.3f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


def compiled_main(args) -> None:
    """Compiled bare HAT step against the compiled plain fused step (first steps excluded)."""
    bare, plain, first = [], [], {}
    for _ in range(args.repeats):
        times = bare_step_times(args.steps)
        first.setdefault("hat", times[0])
        bare.extend(times[10:])
        times = plain_step_times(args.steps, fused=True)
        first.setdefault("plain", times[0])
        plain.extend(times[10:])
    result = {
        "model": f"{args.backbone}, HAT, batch {BATCH}, torch.compile",
        "threads": args.threads,
        "first_step_s": first,
        "compiled_bare_step_ms": 1e3 * statistics.median(bare),
        "compiled_plain_fused_step_ms": 1e3 * statistics.median(plain),
    }
    result["ratio"] = result["compiled_bare_step_ms"] / result["compiled_plain_fused_step_ms"]
    print(json.dumps(result, indent=2))
    print(f"compiled HAT step / compiled plain step = {result['ratio']:.3f} (target <= 1.3)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
