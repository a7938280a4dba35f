"""Results rows of a small ViT (``examples/vit_nets.py``) next to the CNN on split Fashion-MNIST.

The results page's protocol (TIL heads, Adam 1e-3, batch 128, 2 epochs per task, 10%
validation, the presets' hyperparameters) with a reduced training set per task (``--train-subset``)
so that the four runs per seed fit a shared 2-core machine; the CNN is run in the same reduced
setting, so the rows compare with each other, not with the page's full tables. Each run is its
own ``hatcl run`` process (resumable: finished runs are skipped). Run from the repository root
(the ViT is imported as ``examples.vit_nets``).

    nice -n 19 python benchmarks/vit_results.py --out bench_vit --seeds 1 2 --jobs 2
    python benchmarks/vit_results.py --out bench_vit --seeds 1 2 --report-only
    python benchmarks/vit_results.py --quick --out /tmp/vit_smoke --methods hat --train-subset 100
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol  # noqa: E402  (the results page's settings and aggregation)

VIT = [
    "data=split_fashion_mnist",
    "head=til",
    "trainer.max_epochs=2",
    "trainer.batch_size=128",
    "backbone=custom",
    "backbone.target=examples.vit_nets:make_vit",
    "backbone.unmasked=per_task",
]
BENCHMARKS = {"cnn": ["benchmark=split_fashion_mnist"], "vit": VIT}
QUICK = {  # the ViT on two tasks of the 8x8 digits, one short epoch (a smoke test)
    "vit_digits": [
        *(o.replace("split_fashion_mnist", "split_digits") for o in VIT),
        "data.num_tasks=2",
        "data.test_subset=40",
        "trainer.max_epochs=1",
    ]
}
METHODS = ("hat", "fgadahat_IG", "fgadahat_GxA")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_vit"))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (1 thread each)")
    parser.add_argument("--train-subset", type=int, default=3000, help="training samples per task")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny digits version (smoke test)")
    args = parser.parse_args(argv)
    extra = [f"data.train_subset={args.train_subset}", "trainer.figures=false"]
    jobs = protocol.plan(
        out=args.out,
        benchmarks=QUICK if args.quick else BENCHMARKS,
        methods=args.methods,
        seeds=args.seeds,
        threads=1,
        extra=extra,
    )
    if not args.report_only:
        protocol.run_all(jobs, parallel=args.jobs)
    print(protocol.markdown(protocol.aggregate(jobs), figures={}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
