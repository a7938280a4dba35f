"""A GPU check for users with a CUDA GPU: every algorithm, tiny, in each precision vs the CPU.

For every registered algorithm, one tiny run (permuted digits, 2 tasks, 2 epochs, a 64-32 MLP)
on the CPU in ``32-true`` (the reference) and on ``cuda`` in ``32-true``, ``16-mixed`` and
``bf16-mixed`` (if the GPU supports bf16). Each GPU run is compared with the reference:

- accuracy: the largest difference of an accuracy-matrix entry, tolerance
  ``ACCURACY_TOLERANCE`` (0.05 in 32-true, 0.15 in mixed precision: the runs are not
  bit-identical, a few test samples may flip);
- masks (HAT family): the fraction of units whose stored binary mask differs, tolerance
  ``MASK_TOLERANCE`` (0.02 in 32-true, 0.10 in mixed precision);

and prints the mean step time, the peak device memory and the host syncs per training step
(counted with ``torch.cuda.set_sync_debug_mode``; the grad scaler's own check under ``16-mixed``
and joint's grouped forward are expected, see docs/gpu.md). It also prints the kernels per step
(steps 5-14 of the first task under ``torch.profiler``: CUDA kernel launches and copies on a GPU,
top-level ATen ops with ``--accelerator cpu``), the steady (median) eager step time and the same
run with ``trainer.compile=true``: its steady step time and kernels per step (also checked
against the reference). Exit code 1 if a tolerance is exceeded. Without a CUDA GPU it says so
and exits 0.

    python benchmarks/gpu_check.py [--algorithms hat fgadahat] [--precisions 16-mixed]
        [--no-compile] [--compile-backend inductor]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch

import hatcl.training.compile as compile_lib
import hatcl.training.module as module_lib
import hatcl.training.task_loop as task_loop
from hatcl.algorithms.registries import ALGORITHMS
from hatcl.cli_run import compose_config, run_from_config

TINY = [
    "data.num_tasks=2",
    "trainer.max_epochs=2",
    "trainer.batch_size=64",
    "trainer.enable_progress_bar=false",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
    "trainer.log_every_n_steps=50",
    "backbone.hidden_dims=[64,32]",
    "seed=1",
]
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
ACCURACY_TOLERANCE = {"32-true": 0.05, "16-mixed": 0.15, "bf16-mixed": 0.15}
MASK_TOLERANCE = {"32-true": 0.02, "16-mixed": 0.10, "bf16-mixed": 0.10}
SKIP = 3  # first steps of every task left out of the steady step time (compilation)
PROFILED = range(5, 15)  # steps of the first task whose kernels are counted


class StepMeter(L.Callback):
    """Step time, steady step time and kernels per step.

    ``seconds / steps`` (synchronised at fit start and end only) covers whole fits. The steady
    time is the median of the single steps' times (batch start to batch end: CUDA events on a
    GPU, read at fit end, so no step waits for the device; ``perf_counter`` on the CPU), leaving
    out the first ``SKIP`` steps of every fit and the profiled window; the steps where
    ``trainer.compile=true`` compiles later (a new mask scale, the smaller last batch) are
    outliers the median drops. The window (steps ``PROFILED`` of the first fit) runs under
    ``torch.profiler`` and gives ``kernels_per_step`` (see :func:`count_kernels`).
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.seconds = 0.0
        self.steps = self.fits = self.step = 0
        self.step_seconds: list[float] = []
        self.kernels_per_step: float | None = None
        self._started = 0.0
        self._step_from: object = None
        self._pending: list[tuple[object, object]] = []  # CUDA events of this fit's steps
        self._profiler: torch.profiler.profile | None = None

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _mark(self) -> object:
        """A point in time: a recorded CUDA event on a GPU (no synchronisation), else a float."""
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _seconds(self, start, end) -> float:
        if not self.cuda:
            return end - start
        return start.elapsed_time(end) / 1000  # both recorded, the device synchronised

    def on_train_start(self, trainer, pl_module) -> None:
        self.step = 0
        self._started = self._now()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.fits == 0 and self.step == PROFILED.start:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.cuda:
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._profiler = torch.profiler.profile(activities=activities)
            self._profiler.__enter__()
        self._step_from = self._mark()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.step >= SKIP and self._profiler is None:
            self._pending.append((self._step_from, self._mark()))
        self.steps += 1
        self.step += 1
        if self._profiler is not None and self.step == PROFILED.stop:
            self._end_window()

    def _end_window(self) -> None:
        self._profiler.__exit__(None, None, None)
        steps = self.step - PROFILED.start
        self.kernels_per_step = count_kernels(self._profiler.events(), cuda=self.cuda) / steps
        self._profiler = None

    def on_train_end(self, trainer, pl_module) -> None:
        if self._profiler is not None:  # a first task shorter than the window
            self._end_window()
        self.seconds += self._now() - self._started
        self.step_seconds += [self._seconds(start, end) for start, end in self._pending]
        self._pending = []
        self.fits += 1


def count_kernels(events, *, cuda: bool) -> int:
    """Kernels in profiled ``events``: device activities (kernel launches, copies, memsets)
    on CUDA; on the CPU the ATen ops called from outside any ATen op (top-level, the ops a
    step dispatches; views included), which stand for them."""
    if cuda:
        return sum(event.device_type == torch.autograd.DeviceType.CUDA for event in events)
    return sum(event.name.startswith("aten::") and not _inside_aten(event) for event in events)


def _inside_aten(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def run(
    algorithm: str, *, accelerator: str, precision: str, folder: Path, compiled: bool = False
) -> dict:
    """One tiny run (``compiled``: with ``trainer.compile=true``); its accuracy matrix, masks,
    step times, kernels per step, peak memory and syncs per step."""
    cuda = accelerator == "gpu"
    meter = StepMeter(cuda)
    syncs: list[int] = []
    make_trainer, training_step = task_loop.make_trainer, module_lib.ContinualModule.training_step

    def trainer_with_meter(*args, callbacks=(), **kwargs):
        return make_trainer(*args, callbacks=[*callbacks, meter], **kwargs)

    def counted_step(self, batch, batch_idx):
        if not cuda:
            return training_step(self, batch, batch_idx)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return training_step(self, batch, batch_idx)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                syncs.append(sum("synchroniz" in str(w.message) for w in caught))

    task_loop.make_trainer, module_lib.ContinualModule.training_step = (
        trainer_with_meter,
        counted_step,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        cfg = compose_config(
            [
                f"algorithm={algorithm}",
                *TINY,
                f"trainer.accelerator={accelerator}",
                f"trainer.precision={precision}",
                f"trainer.compile={str(compiled).lower()}",
                f"output_dir={folder / f'{algorithm}_{accelerator}_{precision}_{compiled}'}",
            ]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_from_config(cfg)
    finally:
        task_loop.make_trainer, module_lib.ContinualModule.training_step = (
            make_trainer,
            training_step,
        )
    masker = getattr(result.module.model.backbone, "masker", None)
    masks = None
    if masker is not None:
        masks = {t: masker.store.mask(t) for t in masker.store.stored_task_ids()}
        masks = {t: {k: v.detach().cpu() for k, v in m.items()} for t, m in masks.items()}
    return {
        "matrix": result.metrics["accuracy_matrix"],
        "masks": masks,
        "step_ms": 1000 * meter.seconds / max(meter.steps, 1),
        "steady_ms": 1000 * statistics.median(meter.step_seconds or [0.0]),
        "kernels_per_step": meter.kernels_per_step,
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "syncs_per_step": sum(syncs) / len(syncs) if syncs else None,
    }


def compare(reference: dict, other: dict) -> tuple[float, float | None]:
    """Largest accuracy difference and fraction of differing mask units (None: no masks)."""
    accuracy = max(
        abs(a - b)
        for row_a, row_b in zip(reference["matrix"], other["matrix"])
        for a, b in zip(row_a, row_b)
    )
    if reference["masks"] is None:
        return accuracy, None
    differing = total = 0
    for task, masks in reference["masks"].items():
        for key, mask in masks.items():
            differing += int((mask != other["masks"][task][key]).sum())
            total += mask.numel()
    return accuracy, differing / max(total, 1)


def _precisions(wanted: list[str], accelerator: str) -> list[str]:
    chosen = []
    for precision in wanted:
        if precision == "bf16-mixed" and accelerator == "gpu" and not _bf16_on_gpu():
            print("bf16-mixed: skipped, this GPU has no bfloat16 support")
        elif precision == "16-mixed" and accelerator == "cpu":
            print("16-mixed: skipped, it needs a CUDA GPU")
        else:
            chosen.append(precision)
    return chosen


def _bf16_on_gpu() -> bool:
    return torch.cuda.is_bf16_supported()


def _line(algorithm: str, precision: str, result: dict, accuracy: float, masks) -> str:
    peak = "n/a" if result["peak_mib"] is None else f"{result['peak_mib']:.1f}"
    syncs = "n/a" if result["syncs_per_step"] is None else f"{result['syncs_per_step']:.2f}"
    mask_text = "n/a" if masks is None else f"{masks:.4f}"
    return (
        f"{algorithm:12s} {precision:10s} {result['step_ms']:8.2f} {peak:>9s} {syncs:>6s} "
        f"{accuracy:8.4f} {mask_text:>8s}"
    )


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _compiled_columns(eager: dict, compiled: dict | None) -> str:
    """kernels/step, steady eager ms, then the compiled run's steady ms and kernels/step."""
    if compiled is None:
        compiled = {"steady_ms": None, "kernels_per_step": None}
    return (
        f" {_number(eager['kernels_per_step'], '.1f'):>9s} {eager['steady_ms']:8.2f}"
        f" {_number(compiled['steady_ms'], '.2f'):>8s}"
        f" {_number(compiled['kernels_per_step'], '.1f'):>9s}"
    )


def _beyond(precision: str, accuracy: float, masks: float | None) -> bool:
    return accuracy > ACCURACY_TOLERANCE[precision] or (
        masks is not None and masks > MASK_TOLERANCE[precision]
    )


def _check(algorithm: str, precisions: list[str], args, folder: Path) -> list[str]:
    """Runs one algorithm against its CPU reference; prints its rows, returns its failures."""
    failures = []
    reference = run(algorithm, accelerator="cpu", precision="32-true", folder=folder / "r")
    for precision in precisions:
        kwargs = {"accelerator": args.accelerator, "precision": precision, "folder": folder}
        result = run(algorithm, **kwargs)
        accuracy, masks = compare(reference, result)
        if _beyond(precision, accuracy, masks):
            failures.append(f"{algorithm} {precision}")
        compiled = None
        if not args.no_compile:
            compiled = run(algorithm, **kwargs, compiled=True)
            if _beyond(precision, *compare(reference, compiled)):
                failures.append(f"{algorithm} {precision} compiled")
        line = _line(algorithm, precision, result, accuracy, masks)
        print(line + _compiled_columns(result, compiled), flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", nargs="*", default=list(ALGORITHMS.names()))
    parser.add_argument("--precisions", nargs="*", default=list(PRECISIONS))
    parser.add_argument(
        "--accelerator",
        default="gpu",
        choices=("gpu", "cpu"),
        help="cpu: compare CPU runs with the CPU reference (checks this script, not a GPU)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled runs")
    parser.add_argument(
        "--compile-backend",
        default=compile_lib.BACKEND,
        help="torch.compile backend of the compiled runs (aot_eager: no C++ build, quick)",
    )
    args = parser.parse_args(argv)
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing to check")
        return 0
    precisions = _precisions(args.precisions, args.accelerator)
    failures = []
    print(
        "algorithm    precision  step ms  peak MiB  syncs  max dAcc  mask diff"
        "  kern/step  eager ms  comp ms  comp kern"
    )
    backend, compile_lib.BACKEND = compile_lib.BACKEND, args.compile_backend
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for algorithm in args.algorithms:
                failures += _check(algorithm, precisions, args, Path(tmp))
    finally:
        compile_lib.BACKEND = backend
    if failures:
        print(f"beyond tolerance: {', '.join(failures)}")
        return 1
    print("all within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
