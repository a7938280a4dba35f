"""Screenshots of the two HTML reports for docs/report.md, rendered by headless Chromium.

Trains an FG-AdaHAT run and a 2-algorithm x 2-seed sweep (FG-AdaHAT, HAT) on permuted digits,
whose reports ``trainer.report`` writes; renders both with :func:`hatcl.reporting.browser.render`
(which also checks that no request leaves the file and the console has no error) and saves
``report_run.png`` and ``report_sweep.png``::

    python benchmarks/report_screenshots.py --out docs/figures          # about 2 minutes
    python benchmarks/report_screenshots.py --out /tmp/shots --quick    # seconds: smoke test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

SETTINGS = [
    "data.num_tasks=4",
    "trainer.max_epochs=5",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.figures=false",
    "trainer.loggers=[]",
]
QUICK = ["data.num_tasks=3", "trainer.max_epochs=1", "data.train_subset=300"]


def shoot(report: Path, png: Path, *, width: int) -> list[str]:
    """Render ``report``; save its screenshot to ``png``; return the figures' keys."""
    from hatcl.reporting.browser import render

    rendering = render(report, width=width)
    if rendering.requests or rendering.errors:
        raise SystemExit(f"{report}: requests {rendering.requests}, errors {rendering.errors}")
    png.write_bytes(rendering.screenshot)
    return [figure["key"] for figure in rendering.figures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the two PNG files")
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--width", type=int, default=1100, help="page width in pixels")
    options = parser.parse_args(argv)
    from hatcl.cli_run import run_command

    settings = SETTINGS + (QUICK if options.quick else [])
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hatcl-report-shots-") as scratch:
        run, sweep = Path(scratch) / "fgadahat", Path(scratch) / "sweep"
        if run_command(["algorithm=fgadahat", *settings, f"output_dir={run}"]) != 0:
            return 1
        sweep_args = ["-m", "algorithm=fgadahat,hat", "seed=1,2", *settings]
        if run_command([*sweep_args, f"hydra.sweep.dir={sweep}"]) != 0:
            return 1
        for name, folder in (("run", run), ("sweep", sweep)):
            png = options.out / f"report_{name}.png"
            keys = shoot(folder / "report.html", png, width=options.width)
            print(f"{png}: {len(keys)} figures ({', '.join(keys)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
