"""Cost of FG-AdaHAT's importance types: one training step divided by one HAT step.

For the reference MLP (784-256-100-64, batch 128, 10 classes, random data), every registered
importance type's training step is timed right after a HAT step in one process, in rounds over
all variants; the ratio is the median over rounds of (step time / the HAT step time just
before it). The FG-AdaHAT step uses
``hatcl.algorithms.fgadahat.FGAdaHAT`` when it is importable; otherwise it is measured as
"HAT step + importance compute" (labelled in the output). Attribution types are also timed
with Captum called once per layer (the reference's way), and their importance computation
alone is timed for both implementations.

Usage::

    PYTHONPATH=src python benchmarks/importance_cost.py [--rounds 7] [--threads 1]
        [--repeat 3] [--json docs/importance_cost.json] [--markdown docs/importance_cost.md]

The Markdown table replaces the block between ``<!-- table:start -->`` and
``<!-- table:end -->`` in the Markdown file (the rest of the page is kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution.measures import SHARED_METHODS, attribution_measure
from hatcl.importance.base import ImportanceContext, ImportanceMeasure
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage
from hatcl.training.optim import build_optimizer
from hatcl.training.step import run_training_step

HIDDEN = (256, 100, 64)
BATCH = 128
CLASSES = 10
NUM_BATCHES = 50
ATTRIBUTION = {f"{method}_abs": method for method in SHARED_METHODS}
GRADIENT_PASS = {"gradient_x_activation_abs": 2.0, "gradcam_abs": 2.0}
PROPAGATION = {"deeplift_abs": 4.0, "lrp_abs": 4.0}
FGADAHAT_PRESET = {
    "adjustment_intensity": 1.5e-7,
    "importance_summing_strategy": "add_all",
    "importance_scheduler_type": "linear_sparsity_reg",
    "neuron_to_weight_importance_aggregation_mode": "min",
    "mask_sparsity_reg_factor": 0.1,
    "base_importance": 1e-8,
    "base_mask_sparsity_reg": 0.1,
    "base_linear": 5.0,
}
START, END = "<!-- table:start -->", "<!-- table:end -->"


def _fgadahat_class():
    try:
        from hatcl.algorithms.fgadahat import FGAdaHAT
    except ImportError:
        return None
    return FGAdaHAT


@dataclass
class Runner:
    """One model, algorithm and optimizer; ``step()`` runs one step (docs/spec.md §3 order)."""

    model: ContinualModel
    algorithm: HAT
    optimizer: torch.optim.Optimizer
    inputs: torch.Tensor
    targets: torch.Tensor
    measure: ImportanceMeasure | None = None
    index: int = 0

    def step(self) -> None:
        batch_index = self.index % NUM_BATCHES
        self.index += 1
        result = run_training_step(
            model=self.model,
            algorithm=self.algorithm,
            optimizer=self.optimizer,
            inputs=self.inputs,
            targets=self.targets,
            task_id=1,
            batch_index=batch_index,
            num_batches=NUM_BATCHES,
        )
        context = result.context
        if self.measure is not None:
            self.measure.compute(self._importance_context(context))

    def compute_only(self, measure: ImportanceMeasure) -> Callable[[], None]:
        """A closure computing ``measure`` on a fixed post-step state."""
        scale = self.algorithm.training_scale(batch_index=10, num_batches=NUM_BATCHES)
        output = self.model(self.inputs, task_id=1, stage=Stage.TRAIN, scale=scale)
        context = ImportanceContext(
            model=self.model,
            task_id=1,
            inputs=self.inputs,
            targets=self.targets,
            scale=scale,
            output=output,
            step=10,
        )
        return lambda: measure.compute(context)

    def _importance_context(self, context: StepContext) -> ImportanceContext:
        return ImportanceContext.from_step(context, step=self.index)


def _runner(algorithm, data, measure: ImportanceMeasure | None = None) -> Runner:
    torch.manual_seed(0)
    model = ContinualModel(
        backbone=MLPBackbone(input_shape=(784,), hidden_dims=HIDDEN),
        heads=TaskIncrementalHeads(input_dim=HIDDEN[-1]),
    )
    model.setup_task(task_id=1, num_classes=CLASSES)
    algorithm.on_task_start(task_id=1, model=model)
    optimizer = build_optimizer(  # the library's default implementation (fused Adam)
        algorithm.trainable_parameters(model), name="adam", lr=1e-3, weight_decay=0.0, options={}
    )
    inputs, targets = data
    return Runner(model, algorithm, optimizer, inputs, targets, measure)


def _fgadahat_runner(name: str, data, captum: bool) -> tuple[Runner, str]:
    """FG-AdaHAT with importance ``name`` if available, else HAT + the importance compute."""
    fgadahat = _fgadahat_class()
    measure = (
        attribution_measure(ATTRIBUTION[name], implementation="captum_per_layer")
        if captum
        else IMPORTANCE_TYPES.get(name)
    )
    if fgadahat is None:
        return _runner(HAT(), data, measure), "HAT step + importance compute"
    algorithm = fgadahat(importance_type=name, **FGADAHAT_PRESET)
    if captum:
        if not isinstance(getattr(algorithm, "measure", None), ImportanceMeasure):
            raise TypeError("FGAdaHAT has no `measure` attribute to swap for the Captum one")
        algorithm.measure = measure
    return _runner(algorithm, data), "FG-AdaHAT step"


def _timed(run: Callable[[], None], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        run()
    return (time.perf_counter() - start) / repeat


def _paired(
    variants: dict[str, Callable[[], None]],
    reference: Callable[[], None],
    *,
    rounds: int,
    repeat: int,
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Time each variant right after ``reference``, in rounds; return medians.

    Returns the reference's median time, each variant's median time and the median over
    rounds of each variant's time divided by the reference time measured just before it.
    """
    reference()
    for run in variants.values():  # warm-up
        run()
    references: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in variants}
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            base = _timed(reference, repeat)
            value = _timed(run, repeat)
            references.append(base)
            times[name].append(value)
            ratios[name].append(value / base)
    median = statistics.median
    return (
        median(references),
        {name: median(values) for name, values in times.items()},
        {name: median(values) for name, values in ratios.items()},
    )


def _target(name: str, layers: int) -> tuple[str, float]:
    if name in GRADIENT_PASS:
        return "step <= x HAT", GRADIENT_PASS[name]
    if name in PROPAGATION:
        return "step <= x HAT", PROPAGATION[name]
    if name in ATTRIBUTION:
        return "speed-up vs Captum >=", layers - 0.5
    return "step <= x HAT", 1.15


def measure_all(*, rounds: int, repeat: int, types: list[str] | None = None) -> dict:
    """Time every registered importance type (or ``types``); return the JSON-ready results."""
    generator = torch.Generator().manual_seed(0)
    data = (
        torch.rand(BATCH, 784, generator=generator),
        torch.randint(0, CLASSES, (BATCH,), generator=generator),
    )
    names = [n for n in IMPORTANCE_TYPES.names() if types is None or n in types]
    hat_step = _runner(HAT(), data).step
    steps: dict[str, Callable[[], None]] = {}
    sources = {}
    for name in names:
        runner, sources[name] = _fgadahat_runner(name, data, captum=False)
        steps[name] = runner.step
        if name in ATTRIBUTION:
            steps[f"{name}:captum"] = _fgadahat_runner(name, data, captum=True)[0].step
    hat, _, step_ratios = _paired(steps, hat_step, rounds=rounds, repeat=repeat)
    probe = _runner(HAT(), data)
    probe.step()
    compute_times, speedups = {}, {}
    for name in names:
        if name not in ATTRIBUTION and not IMPORTANCE_TYPES.get(name).plugin:
            run = probe.compute_only(IMPORTANCE_TYPES.get(name))
            run()
            compute_times[name] = statistics.median(_timed(run, repeat) for _ in range(rounds))
    for name in [n for n in names if n in ATTRIBUTION]:
        shared = probe.compute_only(IMPORTANCE_TYPES.get(name))
        captum = probe.compute_only(
            attribution_measure(ATTRIBUTION[name], implementation="captum_per_layer")
        )
        compute_times[name], times, ratios = _paired(
            {"captum": captum}, shared, rounds=rounds, repeat=1
        )
        compute_times[f"{name}:captum"], speedups[name] = times["captum"], ratios["captum"]
    rows = []
    for name in names:
        kind, bound = _target(name, len(HIDDEN))
        row = {
            "importance_type": name,
            "step_ratio": step_ratios[name],
            "measured_as": sources[name],
            "target": f"{kind} {bound:g}",
        }
        if name in compute_times:
            row["compute_seconds"] = compute_times[name]
        if name in ATTRIBUTION:
            row |= {
                "captum_step_ratio": step_ratios[f"{name}:captum"],
                "captum_compute_seconds": compute_times[f"{name}:captum"],
                "speedup_vs_captum": speedups[name],
            }
        value = row["speedup_vs_captum"] if kind.startswith("speed") else row["step_ratio"]
        row["target_met"] = value >= bound if kind.startswith("speed") else value <= bound
        rows.append(row)
    return {
        "model": f"MLP 784-{'-'.join(map(str, HIDDEN))}, batch {BATCH}, {CLASSES} classes",
        "rounds": rounds,
        "steps_per_measurement": repeat,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "hat_step_seconds": hat,
        "rows": rows,
    }


def markdown_table(results: dict) -> str:
    """The results as a Markdown table."""
    lines = [
        f"{results['model']}; HAT step {results['hat_step_seconds'] * 1e3:.2f} ms; "
        f"medians of {results['rounds']} rounds (each variant timed right after a HAT step, "
        f"{results['steps_per_measurement']} steps per timing), {results['threads']} thread(s).",
        "",
        "| importance type | step / HAT step | Captum per layer: step / HAT step "
        "| compute (ms) | Captum compute (ms) | speed-up vs Captum | target | met | measured as |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        captum = row.get("captum_step_ratio")
        lines.append(
            "| {} | {:.2f} | {} | {} | {} | {} | {} | {} | {} |".format(
                row["importance_type"],
                row["step_ratio"],
                "" if captum is None else f"{captum:.2f}",
                _ms(row.get("compute_seconds")),
                _ms(row.get("captum_compute_seconds")),
                "" if captum is None else f"{row['speedup_vs_captum']:.2f}",
                row["target"],
                "yes" if row["target_met"] else "no",
                row["measured_as"],
            )
        )
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e3:.1f}"


def _write_markdown(path: Path, table: str) -> None:
    text = path.read_text() if path.exists() else f"{START}\n{END}\n"
    if START not in text or END not in text:
        text = f"{text.rstrip()}\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    """Run the benchmark and write the JSON and the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=10, help="steps per timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("docs/importance_cost.json"))
    parser.add_argument("--markdown", type=Path, default=Path("docs/importance_cost.md"))
    parser.add_argument("--types", nargs="+", default=None, help="only these importance types")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = measure_all(rounds=args.rounds, repeat=args.repeat, types=args.types)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    _write_markdown(args.markdown, table)
    print(table)


if __name__ == "__main__":
    main()
