"""The class-incremental table of docs/results.md: split Fashion-MNIST under ``head=cil``.

Split Fashion-MNIST (5 tasks of 2 classes), the results page's protocol (Adam 1e-3, batch 128,
10% validation, the methods' presets) except the backbone and the epochs: the reference MLP
784-256-100-64 (the page's CNN costs ~25 min per run on the shared machine) and ``--epochs``
(default 1) epochs per task. Each method is trained ONCE per seed (``hatcl run ... head=cil``,
one torch thread, task checkpoints kept). Task scores and calibrations act at test time only, so a
per-task-network method's run is then re-evaluated from its task checkpoints under every
(``cil.task_score``, ``cil.calibration``) pair (:func:`hatcl.training.reevaluate.reevaluate`);
a shared network predicts over all seen classes and has one row. The table gives TAg AA (the
headline), TAw AA and the task-id accuracy after the last task, mean ± std over seeds, and is
written between the page's ``<!-- cil table -->`` markers (or printed).

    python benchmarks/cil_table.py --out bench_cil --seeds 1 2 3 --epochs 1 --page docs/results.md
    python benchmarks/cil_table.py --out bench_cil_cnn --backbone cnn --seeds 1 2 3 --epochs 2 \
        --methods hat fgadahat_OG finetuning joint --page docs/results.md --marker "cil cnn table"
    python benchmarks/cil_table.py --out /tmp/cil_quick --quick   # digits, 1 epoch (smoke)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: (method, overrides); per-task-network methods are re-evaluated under every score pair.
METHODS: dict[str, tuple[str, ...]] = {
    "hat": ("algorithm=hat",),
    "independent": ("algorithm=independent",),
    "adahat": ("algorithm=adahat",),
    "fgadahat_OG": ("experiment=OG",),
    "fgadahat_IG": ("experiment=IG",),
    "finetuning": ("algorithm=finetuning",),
    "ewc": ("algorithm=ewc",),
    "lwf": ("algorithm=lwf",),
    "joint": ("algorithm=joint",),
    "er": ("algorithm=er",),
    "der": ("algorithm=der",),
    "derpp": ("algorithm=derpp",),
    "wsn": ("algorithm=wsn",),
}
PER_TASK_NETWORK = {"hat", "adahat", "fgadahat_OG", "fgadahat_IG", "independent", "wsn"}
SCORES = ("max_softmax", "max_logit", "energy", "neg_entropy")
CALIBRATIONS = ("none", "affine")
MARKER = "cil table"  # the page's markers: <!-- cil table: begin --> ... <!-- cil table: end -->
COMMON = (
    "head=cil",
    "trainer.num_threads=1",
    "trainer.enable_progress_bar=false",
    "trainer.loggers=[]",
    "trainer.figures=false",
)
QUICK = ("data=split_digits", "backbone=mlp", "backbone.hidden_dims=[32,32]")
#: The protocol per ``--backbone``: the reference MLP, or the results page's reduced CNN
#: (``benchmark=split_fashion_mnist``: conv channels 32-64-128, fully connected 512-512).
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "mlp": ("data=split_fashion_mnist", "backbone=mlp", "trainer.batch_size=128"),
    "cnn": ("benchmark=split_fashion_mnist",),
}


def train(
    folder: Path,
    overrides: Sequence[str],
    *,
    seed: int,
    epochs: int,
    quick: bool,
    backbone: str = "mlp",
) -> None:
    """One ``hatcl run`` (skipped if ``folder`` already holds a finished run)."""
    if (folder / "metrics.json").is_file():
        return
    base = QUICK if quick else PROTOCOLS[backbone]
    command = [
        sys.executable, "-m", "hatcl.cli", "run", *base, *overrides, *COMMON,
        f"seed={seed}", f"trainer.max_epochs={epochs}", f"output_dir={folder}",
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def final_numbers(matrices: dict) -> dict[str, float]:
    """TAg AA, TAw AA and task-id accuracy after the last task."""
    numbers = {}
    for key, name in (
        ("accuracy_matrix", "tag"),
        ("accuracy_matrix_task_aware", "taw"),
        ("task_id_accuracy", "task_id"),
    ):
        last = matrices[key][-1]
        numbers[name] = sum(last) / len(last)
    return numbers


def evaluate(folder: Path, method: str) -> dict[str, dict[str, float]]:
    """``{"score/calibration": numbers}`` of one trained run (cached in ``cil_scores.json``)."""
    cache = folder / "cil_scores.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    if method in PER_TASK_NETWORK:
        from hatcl.training.reevaluate import reevaluate

        pairs = [(s, c) for s in SCORES for c in CALIBRATIONS]
        results = reevaluate(folder, combinations=pairs)
        rows = {f"{s}/{c}": final_numbers(results[(s, c)]) for s, c in pairs}
    else:
        rows = {"-": final_numbers(json.loads((folder / "metrics.json").read_text()))}
    cache.write_text(json.dumps(rows, indent=1))
    return rows


def _cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(results: dict[str, dict[int, dict[str, dict[str, float]]]]) -> str:
    """Markdown: one row per (method, score/calibration), mean ± std over seeds."""
    lines = [
        "| method | task score / calibration | seeds | TAg AA | TAw AA | task-id accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for method, seeds in results.items():
        if not seeds:
            continue
        for pair in next(iter(seeds.values())):
            runs = [rows[pair] for rows in seeds.values() if pair in rows]
            cells = [_cell([run[key] for run in runs]) for key in ("tag", "taw", "task_id")]
            lines.append(f"| {method} | {pair} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_page(page: Path, text: str, *, marker: str = MARKER) -> None:
    """Replace the text between the page's ``<!-- {marker}: begin/end -->`` markers."""
    begin, end = f"<!-- {marker}: begin -->", f"<!-- {marker}: end -->"
    content = page.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise ValueError(f"{page} has no {begin} ... {end} markers")
    page.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", content))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--epochs", type=int, default=1, help="epochs per task (page: 2)")
    parser.add_argument(
        "--backbone", choices=list(PROTOCOLS), default="mlp", help="mlp, or the page's reduced CNN"
    )
    parser.add_argument("--page", type=Path, help="write the table into this page")
    parser.add_argument("--marker", default=MARKER, help="the page's marker name")
    parser.add_argument("--report-only", action="store_true", help="finished runs only")
    parser.add_argument("--quick", action="store_true", help="digits, MLP (a smoke test)")
    args = parser.parse_args(argv)
    results: dict[str, dict[int, dict]] = {method: {} for method in args.methods}
    for seed in args.seeds:  # seed-major: a partial sweep covers every method
        for method in args.methods:
            folder = args.out / method / f"seed{seed}"
            if not args.report_only:
                train(
                    folder, METHODS[method], seed=seed, epochs=args.epochs, quick=args.quick,
                    backbone=args.backbone,
                )
            if (folder / "metrics.json").is_file():
                results[method][seed] = evaluate(folder, method)
                print(f"{method} seed {seed}: done", flush=True)
    text = table(results)
    if args.page:
        write_page(args.page, text, marker=args.marker)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
