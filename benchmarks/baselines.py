"""The table of docs/baselines.md: every baseline (and HAT) on the default data, one seed.

Runs each row as its own ``hatcl run`` (the default data: permuted digits, 5 tasks, 10 epochs),
FWT against the ``independent`` run of the same seed, and writes the Markdown table between the
page's ``<!-- baselines table -->`` markers (or prints it).

    python benchmarks/baselines.py --out bench_baselines --page docs/baselines.md
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: (label, overrides) of each row, in the page's order.
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("`independent`", ("algorithm=independent",)),
    ("`joint`", ("algorithm=joint",)),
    ("`hat` (for comparison)", ("algorithm=hat",)),
    ("`ewc` (`ewc_lambda=1000`, the preset)", ("algorithm=ewc",)),
    (
        "`ewc` (`ewc_lambda=1000 fisher_samples=200`)",
        ("algorithm=ewc", "algorithm.fisher_samples=200"),
    ),
    (
        "`ewc` (`mode=online gamma=0.9 ewc_lambda=1000`)",
        ("algorithm=ewc", "algorithm.mode=online", "algorithm.gamma=0.9"),
    ),
    ("`ewc` (`ewc_lambda=10000`)", ("algorithm=ewc", "algorithm.ewc_lambda=10000")),
    ("`ewc` (`ewc_lambda=100`)", ("algorithm=ewc", "algorithm.ewc_lambda=100")),
    ("`ewc` (`ewc_lambda=10`)", ("algorithm=ewc", "algorithm.ewc_lambda=10")),
    ("`ewc` (`ewc_lambda=1`)", ("algorithm=ewc", "algorithm.ewc_lambda=1")),
    ("`lwf` (`distillation_weight=10`)", ("algorithm=lwf", "algorithm.distillation_weight=10")),
    ("`lwf` (paper values, the preset)", ("algorithm=lwf",)),
    ("`finetuning`", ("algorithm=finetuning",)),
    ("`fix`", ("algorithm=fix",)),
)
BEGIN = "<!-- baselines table: begin -->"
END = "<!-- baselines table: end -->"
COMMAND = "python benchmarks/baselines.py --out bench_baselines --page docs/baselines.md"


def run_row(out: Path, index: int, overrides: Sequence[str], *, seed: int, extra: Sequence[str]):
    """Run one row (skipped if its folder already holds a finished run); its folder."""
    folder = out / f"row{index:02d}"
    if not (folder / "metrics.json").is_file():
        reference = [] if index == 0 else [f"reference_run={out / 'row00'}"]
        command = [
            sys.executable, "-m", "hatcl.cli", "run", *overrides, f"seed={seed}",
            "trainer.figures=false", "trainer.enable_progress_bar=false", "trainer.num_threads=1",
            *reference, *extra, f"output_dir={folder}",
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder


def table(out: Path, *, seed: int, extra: Sequence[str]) -> str:
    """Run every row and return the Markdown table."""
    lines = [
        "| algorithm (options) | AA | BWT | forgetting | FWT | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for index, (label, overrides) in enumerate(ROWS):
        folder = run_row(out, index, overrides, seed=seed, extra=extra)
        metrics = json.loads((folder / "metrics.json").read_text())
        seconds = json.loads((folder / "timing.json").read_text())["wall_time_seconds"]
        fwt = metrics.get("fwt")
        cells = [
            label,
            f"{metrics['average_accuracy']:.4f}",
            f"{metrics['bwt']:+.4f}",
            f"{metrics['forgetting']:.4f}",
            "n/a" if fwt is None else f"{fwt:+.4f}",
            f"{seconds:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_page(page: Path, text: str) -> None:
    """Replace what is between the markers of ``page`` by ``text``."""
    content = page.read_text()
    block = f"{BEGIN}\n<!-- made by: {COMMAND} -->\n\n{text}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{page} has no {BEGIN} ... {END} markers")
    page.write_text(pattern.sub(lambda _: block, content))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_baselines"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page", type=Path, default=None, help="write the table into this page")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    options = parser.parse_args(argv)
    text = table(options.out, seed=options.seed, extra=options.extra)
    if options.page is not None:
        write_page(options.page, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
