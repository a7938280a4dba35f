"""The long-sequence result: Permuted Fashion-MNIST with 50 tasks, run, figures and page section.

Runs (``--run``) HAT, AdaHAT and FG-AdaHAT (OG, IG) on 50 permuted Fashion-MNIST tasks (the
reference MLP 784-256-100-64, one epoch per task, batch 128, seed 1), each as its own
``hatcl run`` under ``/usr/bin/time`` (two at a time), then reads the run folders and writes
two figures (average accuracy after each task, network capacity after each task) and a Markdown
section with every run's final AA, BWT, forgetting, final capacity, peak memory and wall time.

    python benchmarks/long_sequence.py --run --out runs-long50            # about 1 hour
    python benchmarks/long_sequence.py --out runs-long50 --page docs/results.md

The section replaces the block between ``<!-- long50:start -->`` and ``<!-- long50:end -->`` of
``--page`` (appended when the markers are missing); figures go to ``docs/figures/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METHODS: dict[str, list[str]] = {
    "hat": ["algorithm=hat"],
    "adahat": ["algorithm=adahat"],
    "fgadahat_OG": ["experiment=OG"],
    "fgadahat_IG": ["experiment=IG"],
}
COMMON = [
    "benchmark=permuted_fashion_mnist",
    "data.num_tasks=50",
    "trainer.max_epochs=1",
    "trainer.num_threads=1",
    "trainer.enable_progress_bar=false",
    "seed=1",
]
START, END = "<!-- long50:start -->", "<!-- long50:end -->"


def run_one(name: str, out: Path) -> None:
    """One method's run (skipped when its metrics.json exists)."""
    folder = out / name
    if (folder / "metrics.json").is_file():
        return
    command = [
        "/usr/bin/time", "-v", "-o", str(out / f"{name}.time"),
        sys.executable, "-m", "hatcl.cli", "run", *COMMON, *METHODS[name],
        f"output_dir={folder}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(out / f"{name}.log", "w", encoding="utf-8") as log:
        subprocess.run(command, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)


def read_run(name: str, out: Path) -> dict:
    """AA and capacity after each task, final metrics, peak RSS and wall time of one run."""
    folder = out / name
    metrics = json.loads((folder / "metrics.json").read_text())
    tasks = json.loads((folder / "tasks.json").read_text())["tasks"]
    timing = json.loads((folder / "timing.json").read_text())
    rusage = (out / f"{name}.time").read_text()
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", rusage).group(1))
    return {
        "aa_per_task": metrics["average_accuracy_per_task"],
        "capacity_per_task": [t.get("capacity") for t in tasks],
        "aa": metrics["average_accuracy"],
        "bwt": metrics["bwt"],
        "forgetting": metrics["forgetting"],
        "final_capacity": metrics.get("final_capacity"),
        "peak_rss_gb": peak_kb / 1024**2,
        "wall_seconds": timing["wall_time_seconds"],
    }


def figures(runs: dict[str, dict], folder: Path) -> tuple[Path, Path]:
    """AA-after-each-task and capacity-after-each-task figures (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / "long50_aa.png", folder / "long50_capacity.png")
    for path, key, label in (
        (paths[0], "aa_per_task", "average accuracy over tasks 1..t"),
        (paths[1], "capacity_per_task", "network capacity after task t"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, run in runs.items():
            values = run[key]
            ax.plot(range(1, len(values) + 1), values, label=name)
        ax.set_xlabel("task t")
        ax.set_ylabel(label)
        if key == "capacity_per_task":
            ax.set_yscale("symlog", linthresh=1e-6)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return paths


def section(
    runs: dict[str, dict], paths: tuple[Path, Path], page: Path, note: str = "", tail: str = ""
) -> str:
    """The Markdown block of the results page."""
    rel = [os.path.relpath(p, page.parent) for p in paths]
    lines = [
        "## Long sequence: Permuted Fashion-MNIST, 50 tasks",
        "",
        "Reference MLP 784-256-100-64, TIL heads, Adam 1e-3 (fused), batch 128, one epoch per "
        "task, 10% validation, seed 1, one torch thread; every run on the same shared 2-core "
        "machine, two at a time. Command: `python benchmarks/long_sequence.py --run --out <dir>` "
        "(then `--page docs/results.md` to redraw this section).",
        "",
        *([note, ""] if note else []),
        "| method | AA after 50 tasks | BWT | forgetting | final capacity | peak RSS (GB) "
        "| wall time (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        capacity = "" if r["final_capacity"] is None else f"{r['final_capacity']:.1e}"
        lines.append(
            f"| {name} | {r['aa']:.4f} | {r['bwt']:.4f} | {r['forgetting']:.4f} | {capacity} | "
            f"{r['peak_rss_gb']:.2f} | {r['wall_seconds'] / 60:.1f} |"
        )
    lines += ["", f"![AA after each task]({rel[0]})", "", f"![capacity]({rel[1]})", ""]
    checkpoints = [5, 10, 20, 30, 40, 50]
    lines += [
        "AA and capacity after tasks " + ", ".join(map(str, checkpoints)) + ":",
        "",
        "| method | "
        + " | ".join(f"AA@{t}" for t in checkpoints)
        + " | "
        + " | ".join(f"cap@{t}" for t in checkpoints)
        + " |",
        "|---|" + "---|" * (2 * len(checkpoints)),
    ]
    for name, r in runs.items():
        aa = [_at(r["aa_per_task"], t, ".3f") for t in checkpoints]
        cap = [_at(r["capacity_per_task"], t, ".1e") for t in checkpoints]
        lines.append(f"| {name} | " + " | ".join(aa + cap) + " |")
    if tail:
        lines += ["", tail.strip()]
    return "\n".join(lines)


def _at(values: list, task: int, fmt: str) -> str:
    if len(values) < task or values[task - 1] is None:
        return ""
    return format(values[task - 1], fmt)


def write_page(page: Path, block: str) -> None:
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = f"{head}{START}\n{block}\n{END}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{START}\n{block}\n{END}\n"
    page.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the run folders")
    parser.add_argument("--run", action="store_true", help="run the missing runs first")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--page", type=Path, default=None, help="results page to update")
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--note", default="", help="a paragraph placed under the setup")
    parser.add_argument(
        "--discussion", type=Path, default=None, help="Markdown file appended to the section"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.run:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda name: run_one(name, args.out), args.methods))
    done = [m for m in args.methods if (args.out / m / "metrics.json").is_file()]
    runs = {name: read_run(name, args.out) for name in done}
    if not runs:
        print("no finished runs")
        return 1
    paths = figures(runs, args.figures)
    tail = args.discussion.read_text(encoding="utf-8") if args.discussion else ""
    block = section(runs, paths, args.page or Path("docs/results.md"), args.note, tail)
    print(block)
    if args.page:
        write_page(args.page, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
