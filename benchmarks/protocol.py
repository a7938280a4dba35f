"""The reference protocol on real data: every method, several seeds, one results page.

Runs each (benchmark, method, seed) as its own ``hatcl run`` process (resumable: a run whose
``metrics.json`` exists is skipped), then aggregates the run folders into ``results.json`` and a
Markdown page with tables (AA, BWT, forgetting, FWT against ``independent`` of the same seed,
final capacity, wall time; mean +- std over seeds) and AA-after-each-task figures.

    python benchmarks/protocol.py --out bench_runs --seeds 1 2 3 --jobs 2 --page docs/results.md
    python benchmarks/protocol.py --quick --out /tmp/smoke        # tiny digits version (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Benchmarks of the FG-AdaHAT paper's protocol (docs/spec.md §5): the Hydra presets
# conf/benchmark/<name> (TIL heads, Adam 1e-3, batch 128, 2 epochs per task, 10% validation; Split
# Fashion-MNIST's CNN at reduced width). split_fashion_mnist_full_cnn is supplementary, not run by
# default.
BENCHMARKS: dict[str, list[str]] = {
    name: [f"benchmark={name}"]
    for name in ("permuted_fashion_mnist", "split_fashion_mnist", "split_fashion_mnist_full_cnn")
}
DEFAULT_BENCHMARKS = ("permuted_fashion_mnist", "split_fashion_mnist")
QUICK_BENCHMARKS: dict[str, list[str]] = {
    "permuted_digits": [
        "data=permuted_digits",
        "data.num_tasks=2",
        "backbone=mlp",
        "backbone.hidden_dims=[32,16]",
        "trainer.max_epochs=1",
    ],
}
FG = "algorithm=fgadahat"
METHODS: dict[str, list[str]] = {
    "finetuning": ["algorithm=finetuning"],
    "fix": ["algorithm=fix"],
    "lwf": ["algorithm=lwf"],
    "ewc": ["algorithm=ewc"],
    "hat": ["algorithm=hat"],
    "adahat": ["algorithm=adahat"],
    "fgadahat_IG": ["experiment=IG"],  # the reference protocol's variants (conf/experiment)
    "fgadahat_ICU": ["experiment=ICU"],
    "fgadahat_AFI": ["experiment=AFI"],
    "fgadahat_OG": ["experiment=OG"],
    "fgadahat_GxA": [FG, "algorithm.importance_type=gradient_x_activation_abs"],
    "independent": ["algorithm=independent"],
    "joint": ["algorithm=joint"],
}
HAT_FAMILY = ("hat", "adahat", "fgadahat")


@dataclass(frozen=True)
class Job:
    """One run of the protocol."""

    benchmark: str
    method: str
    seed: int
    overrides: tuple[str, ...]
    folder: Path


def plan(
    *,
    out: Path,
    benchmarks: dict[str, list[str]],
    methods: Sequence[str],
    seeds: Sequence[int],
    threads: int,
    extra: Sequence[str],
) -> list[Job]:
    """Every (benchmark, method, seed) job with its overrides and run folder."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    return [
        Job(
            benchmark=bench,
            method=method,
            seed=seed,
            overrides=(
                *base,
                *METHODS[method],
                f"seed={seed}",
                f"trainer.num_threads={threads}",
                "trainer.enable_progress_bar=false",
                *extra,
            ),
            folder=out / bench / method / f"seed{seed}",
        )
        for bench, base in benchmarks.items()
        for seed in seeds  # seed-major: a partial run already has every method for seed 1
        for method in methods
    ]


def run_job(job: Job) -> tuple[Job, float, int]:
    """Run ``job`` in its own process unless its folder already holds finished metrics."""
    if (job.folder / "metrics.json").exists():
        return job, 0.0, 0
    job.folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = job.folder.parent / f"{job.folder.name}.out"
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.call(
            [sys.executable, "-m", "hatcl.cli", "run", *job.overrides, f"output_dir={job.folder}"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    return job, time.perf_counter() - started, code


def run_all(jobs: Sequence[Job], *, parallel: int) -> list[tuple[Job, float, int]]:
    """Run the jobs, ``parallel`` at a time, printing one line per finished job."""
    results = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for index, (job, seconds, code) in enumerate(pool.map(run_job, jobs), start=1):
            status = "ok" if code == 0 else f"FAILED (exit {code}, see {job.folder}.out)"
            print(
                f"[{index}/{len(jobs)}] {job.benchmark} {job.method} seed {job.seed}: "
                f"{status} in {seconds:.0f} s",
                flush=True,
            )
            results.append((job, seconds, code))
    return results


def _mean_std(values: Sequence[float | None]) -> dict | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    std = statistics.stdev(known) if len(known) > 1 else 0.0
    return {"mean": statistics.fmean(known), "std": std, "n": len(known)}


def _fwt(matrix: list[list[float]], reference: list[list[float]] | None) -> float | None:
    if reference is None or len(matrix) < 2:
        return None
    diagonal = [row[i] for i, row in enumerate(reference)]
    return statistics.fmean(matrix[t][t] - diagonal[t] for t in range(1, len(matrix)))


def _load_run(folder: Path) -> dict:
    """The run's metrics, with its wall time from ``timing.json`` when present."""
    metrics = json.loads((folder / "metrics.json").read_text())
    timing = folder / "timing.json"
    if timing.exists():
        metrics["wall_time_seconds"] = json.loads(timing.read_text()).get("wall_time_seconds")
    return metrics


def aggregate(jobs: Sequence[Job]) -> dict:
    """Per benchmark and method: mean +- std over seeds of every reported quantity."""
    loaded = {
        (j.benchmark, j.method, j.seed): _load_run(j.folder)
        for j in jobs
        if (j.folder / "metrics.json").exists()
    }
    table: dict = {}
    for (bench, method, seed), metrics in loaded.items():
        reference = loaded.get((bench, "independent", seed))
        row = table.setdefault(bench, {}).setdefault(method, {"runs": []})
        row["runs"].append(
            {
                "seed": seed,
                "aa": metrics["average_accuracy"],
                "bwt": metrics["bwt"],
                "forgetting": metrics["forgetting"],
                "fwt": _fwt(metrics["accuracy_matrix"], reference and reference["accuracy_matrix"]),
                "capacity": metrics.get("final_capacity"),
                "seconds": metrics.get("wall_time_seconds"),
                "aa_curve": metrics.get("average_accuracy_per_task"),
            }
        )
    for methods in table.values():
        for row in methods.values():
            for key in ("aa", "bwt", "forgetting", "fwt", "capacity", "seconds"):
                row[key] = _mean_std([run[key] for run in row["runs"]])
    return table


def _cell(stat: dict | None, digits: int = 4, style: str = "f", *, runs: int = 1) -> str:
    """``mean ± std``; one value alone; ``(n=k)`` when fewer runs than the row's had a value."""
    if stat is None:
        return "n/a"

    def number(value: float) -> str:
        text = f"{value:.{digits}{style}}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0000"

    text = number(stat["mean"])
    if stat["n"] > 1:
        text += f" ± {number(stat['std'])}"
    return text if stat["n"] >= runs else f"{text} (n={stat['n']})"


def markdown(table: dict, *, figures: dict[str, str]) -> str:
    """One table (and figure link) per benchmark."""
    lines = []
    for bench, methods in table.items():
        n = max(len(row["runs"]) for row in methods.values())
        lines += [
            f"### {bench} (up to {n} seed{'s' if n > 1 else ''}: mean ± std over seeds)",
            "",
            "| method | seeds | AA | BWT | forgetting | FWT | final capacity | wall time (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, row in methods.items():
            runs = len(row["runs"])
            cells = [
                _cell(row["aa"], runs=runs),
                _cell(row["bwt"], runs=runs),
                _cell(row["forgetting"], runs=runs),
                _cell(row["fwt"], runs=runs),
                _cell(row["capacity"], 1, "e", runs=runs),
                _cell(row["seconds"], 0, runs=runs),
            ]
            lines.append(f"| {method} | {runs} | {' | '.join(cells)} |")
        if bench in figures:
            lines += ["", f"![AA after each task on {bench}]({figures[bench]})"]
        lines.append("")
    return "\n".join(lines)


def figure(table: dict, bench: str, path: Path) -> None:
    """AA after each task per method (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.cm.tab20.colors  # one distinct colour per method (up to 20)
    for index, (method, row) in enumerate(table[bench].items()):
        curves = [run["aa_curve"] for run in row["runs"] if run["aa_curve"]]
        if curves:
            mean = [statistics.fmean(values) for values in zip(*curves)]
            ax.plot(
                range(1, len(mean) + 1),
                mean,
                marker="o",
                markersize=3,
                label=method,
                color=colours[(2 * index) % 20 + (2 * index) // 20],
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("after task")
    ax.set_ylabel("average accuracy on seen tasks")
    ax.set_title(bench)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def write_page(path: Path, tables: str) -> None:
    """Write ``tables`` to ``path``, between the results markers if the page already has them."""
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tables = f"{head}{START}\n{tables}\n{END}{rest.split(END, 1)[1]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tables)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_runs"))
    parser.add_argument(
        "--benchmarks", nargs="*", default=None, help=f"default: {' '.join(DEFAULT_BENCHMARKS)}"
    )
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (1 thread each)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny digits version (smoke test)")
    parser.add_argument("--page", type=Path, default=None, help="write the Markdown tables here")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    parser.add_argument(
        "--report-only", action="store_true", help="only aggregate the runs that finished"
    )
    args = parser.parse_args(argv)
    catalogue = QUICK_BENCHMARKS if args.quick else BENCHMARKS
    names = args.benchmarks or (list(catalogue) if args.quick else list(DEFAULT_BENCHMARKS))
    unknown = sorted(set(names) - set(catalogue))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; valid: {', '.join(catalogue)}")
    jobs = plan(
        out=args.out,
        benchmarks={n: catalogue[n] for n in names},
        methods=args.methods,
        seeds=args.seeds,
        threads=args.threads,
        extra=args.extra,
    )
    results = [] if args.report_only else run_all(jobs, parallel=args.jobs)
    table = aggregate(jobs)
    figures = {}
    for bench in table:
        path = (args.page.parent if args.page else args.out) / "figures" / f"aa_{bench}.png"
        figure(table, bench, path)
        figures[bench] = os.path.relpath(path, args.page.parent if args.page else args.out)
    (args.out / "results.json").write_text(json.dumps(table, indent=2) + "\n")
    page = markdown(table, figures=figures)
    write_page(args.page or args.out / "results.md", page)
    print(page)
    return 1 if any(code for _, _, code in results) else 0


if __name__ == "__main__":
    sys.exit(main())
