"""``hatcl export RUN --task T --out FILE [--format exported|state_dict]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    from hatcl.product.export import EXPORT_FORMATS

    parser = argparse.ArgumentParser(
        prog="hatcl export",
        description="Write one task's compact network (masked-off units removed) of a finished "
        "run as plain torch: a torch.export program (.pt2) or a state dict.",
    )
    parser.add_argument("run", help="the run folder (output_dir of a finished hatcl run)")
    parser.add_argument("--task", required=True, type=int, help="the task id (1..tasks)")
    parser.add_argument("--out", required=True, help="the file to write (must not exist)")
    parser.add_argument(
        "--format",
        default="exported",
        help=f"one of {', '.join(EXPORT_FORMATS.names())} (default: exported)",
    )
    return parser


def export_command(args: Sequence[str]) -> int:
    """Check everything (run, task, format, output path), then export; 2 on a refused input."""
    try:
        options = _parser().parse_args(list(args))
    except SystemExit as stop:
        return EXIT_USAGE if stop.code else 0
    from hatcl.product.export import check_export_target
    from hatcl.product.load import load

    try:
        check_export_target(options.out, format=options.format)
        run = load(options.run)
        run.check_task(options.task)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"hatcl export: {error}", file=sys.stderr)
        return EXIT_USAGE
    from hatcl.product.export import task_network
    from hatcl.product.prune import count_parameters

    path = run.export(options.task, options.out, format=options.format)
    kept = count_parameters(run.network(options.task))
    full = count_parameters(task_network(run.model, task_id=options.task, prune=False))
    print(f"task {options.task} of {run.folder}: {kept} of {full} parameters kept -> {path}")
    return 0
