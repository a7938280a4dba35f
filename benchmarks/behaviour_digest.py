"""Accuracy matrices of a fixed set of short runs: the before/after check of a refactoring.

Runs every registered algorithm once and FG-AdaHAT with every registered importance type on the
default data (permuted digits) and seed, shortened (``--tasks`` tasks, ``--epochs`` epochs), and
writes ``{run name: accuracy matrix}`` as JSON. Two commits behave the same when their files are
equal::

    python benchmarks/behaviour_digest.py --out before.json      # at the old commit
    python benchmarks/behaviour_digest.py --out after.json       # at the new one
    python benchmarks/behaviour_digest.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

COMMON = [
    "trainer.enable_progress_bar=false",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
    "trainer.num_threads=1",
]
ALGORITHMS = ["finetuning", "hat", "adahat", "fix", "independent", "joint", "ewc", "lwf"]


def _runs(importance_types: list[str]) -> dict[str, list[str]]:
    runs = {name: [f"algorithm={name}"] for name in ALGORITHMS}
    runs["hat_const_alpha"] = [
        "algorithm=hat",
        "algorithm.adjustment_mode=hat_const_alpha",
        "algorithm.alpha=0.1",
    ]
    runs["adahat_no_sum"] = ["algorithm=adahat", "algorithm.adjustment_mode=adahat_no_sum"]
    for name in importance_types:
        runs[f"fgadahat/{name}"] = ["algorithm=fgadahat", f"algorithm.importance_type={name}"]
    return runs


def _measure(args: argparse.Namespace) -> dict[str, list[list[float]]]:
    from hatcl.cli_run import run_command
    from hatcl.importance.registry import IMPORTANCE_TYPES

    shorten = [f"data.num_tasks={args.tasks}", f"trainer.max_epochs={args.epochs}"]
    results: dict[str, list[list[float]]] = {}
    runs = _runs(list(IMPORTANCE_TYPES.names()))
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, overrides) in enumerate(runs.items()):
            folder = Path(scratch) / str(index)
            code = run_command([*overrides, *shorten, *COMMON, f"output_dir={folder}"])
            if code != 0:
                raise SystemExit(f"run {name} failed with exit code {code}")
            metrics = json.loads((folder / "metrics.json").read_text())
            results[name] = metrics["accuracy_matrix"]
            print(f"{index + 1}/{len(runs)} {name}: AA {metrics['average_accuracy']:.4f}")
    return results


def _compare(first: Path, second: Path) -> int:
    a, b = (json.loads(p.read_text()) for p in (first, second))
    differing = sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
    print(f"{len(set(a) & set(b))} runs in both; {len(differing)} differ")
    for name in differing:
        print(f"  {name}: {a.get(name)} != {b.get(name)}")
    return 1 if differing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        return _compare(*args.compare)
    results = _measure(args)
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
