"""Results rows of the comparison set (ER, DER, DER++, WSN) under the results page's protocol.

Runs every (benchmark, method, seed) of ``benchmarks/protocol.py``'s settings (permuted and
split Fashion-MNIST, TIL) for the replay methods at buffer sizes 200 and 500 and WSN at
c = 0.5 and 0.1, each as its own ``hatcl run`` process (resumable: finished runs are skipped),
recording each run's wall time and peak resident memory, then writes the rows as Markdown.

    nice python benchmarks/replay_results.py --out bench_replay --seeds 1 2 3 --jobs 2
    python benchmarks/replay_results.py --out bench_replay --report-only --page /tmp/rows.md
    python benchmarks/replay_results.py --quick --out /tmp/replay_smoke     # digits, seconds
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol  # noqa: E402  (the results page's settings and aggregation)

METHODS: dict[str, list[str]] = {
    "finetuning": ["algorithm=finetuning"],  # the lower reference, in the same setting
    **{
        f"{name}_m{size}": [f"algorithm={name}", f"algorithm.buffer_size={size}"]
        for name in ("er", "der", "derpp")
        for size in (200, 500)
    },
    "wsn_c0.5": ["algorithm=wsn", "algorithm.mask_fraction=0.5"],
    "wsn_c0.1": ["algorithm=wsn", "algorithm.mask_fraction=0.1"],
}


def run_job(job: protocol.Job) -> tuple[protocol.Job, float, int]:
    """Run ``job`` in its own process (skipped when finished); record wall time and peak RSS."""
    measures = job.folder.parent / f"{job.folder.name}.cost.json"
    if (job.folder / "metrics.json").exists():
        return job, 0.0, 0
    job.folder.parent.mkdir(parents=True, exist_ok=True)
    log = job.folder.parent / f"{job.folder.name}.out"
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "hatcl.cli", "run", *job.overrides, f"output_dir={job.folder}"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    measures.write_text(
        json.dumps({"wall_time_s": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}) + "\n"
    )
    return job, seconds, process.returncode


def _cost(job: protocol.Job) -> dict | None:
    path = job.folder.parent / f"{job.folder.name}.cost.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows(jobs: Sequence[protocol.Job]) -> str:
    """Markdown rows: AA, BWT, forgetting (mean ± std over seeds), wall time, peak memory."""
    lines = []
    for bench in dict.fromkeys(job.benchmark for job in jobs):
        lines += [
            f"### {bench}: comparison set",
            "",
            "| method | seeds | AA | BWT | forgetting | wall time (s) | peak memory (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for method in dict.fromkeys(job.method for job in jobs):
            done = [
                j
                for j in jobs
                if j.benchmark == bench
                and j.method == method
                and (j.folder / "metrics.json").exists()
            ]
            if not done:
                continue
            metrics = [json.loads((j.folder / "metrics.json").read_text()) for j in done]
            costs = [c for c in map(_cost, done) if c]
            cells = [
                _stat([m["average_accuracy"] for m in metrics]),
                _stat([m["bwt"] for m in metrics]),
                _stat([m["forgetting"] for m in metrics]),
                _stat([c["wall_time_s"] for c in costs], digits=0),
                _stat([c["peak_rss_mib"] for c in costs], digits=0),
            ]
            lines.append(f"| {method} | {len(done)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _stat(values: Sequence[float], digits: int = 4) -> str:
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_replay"))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (1 thread each)")
    parser.add_argument("--quick", action="store_true", help="tiny digits version (smoke test)")
    parser.add_argument("--page", type=Path, default=None, help="write the Markdown rows here")
    parser.add_argument("--report-only", action="store_true", help="only aggregate finished runs")
    parser.add_argument(
        "--benchmarks", nargs="*", default=None, help="default: the results page's settings"
    )
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    protocol.METHODS.update(METHODS)
    catalogue = protocol.QUICK_BENCHMARKS if args.quick else protocol.BENCHMARKS
    names = args.benchmarks or (
        list(catalogue) if args.quick else list(protocol.DEFAULT_BENCHMARKS)
    )
    jobs = protocol.plan(
        out=args.out,
        benchmarks={n: catalogue[n] for n in names},
        methods=args.methods,
        seeds=args.seeds,
        threads=1,
        extra=["trainer.figures=false", *args.extra],
    )
    codes = []
    if not args.report_only:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for job, seconds, code in pool.map(run_job, jobs):
                print(f"{job.benchmark} {job.method} seed {job.seed}: exit {code}, {seconds:.0f} s")
                codes.append(code)
    page = rows(jobs)
    (args.page or args.out / "rows.md").write_text(page)
    print(page)
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
