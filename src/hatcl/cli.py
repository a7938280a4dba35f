"""The ``hatcl`` command: a thin dispatcher; heavy modules are imported only by the subcommand."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

USAGE = """\
usage: hatcl <command> [arguments]

commands:
  run [overrides]     run a continual-learning experiment (Hydra overrides, e.g.
                      algorithm=hat data=split_digits trainer.max_epochs=3 seed=2
                      output_dir=runs/x); -m/--multirun sweeps comma-separated values
  compare PATH... [--output table.md] [--format md|csv|latex]
          [--figure-format png|svg|pdf] [--force]
                      group finished runs (run folders or sweep folders) by configuration,
                      seeds pooled (runs sharing a seed are flagged: no std); print and
                      write a table (AA, BWT, forgetting, FWT, capacity: mean +- std, n;
                      format from --output's extension) and a figure of AA after each task;
                      an existing file is replaced only with --force
  report RUN_OR_SWEEP [--out FILE] [--force]
                      write a self-contained HTML report (figures inline, no network) of a
                      run folder or a sweep folder: <folder>/report.html or FILE
  export RUN --task T --out FILE [--format exported|state_dict]
                      write task T's compact network of a finished run (masked-off units
                      removed) as a torch.export program (.pt2) that runs without hatcl
  list [GROUP...]     every registered option, or only those of GROUP (e.g. algorithm,
                      importance_type, scheduler, data: `hatcl list groups` names them all)
  help                this message
  --version           the installed version

Run `hatcl run --help` for the configuration groups and their options.
Results go to output_dir (default: runs/<timestamp>/): metrics.json, accuracy_matrix.csv,
config.yaml, tasks.json, training_curves.csv, timing.json, run.log, checkpoints/, logs/,
figures/, report.html. resume=<run folder> continues an interrupted run where it stopped
(SIGINT/SIGTERM write a checkpoint of the step reached, exit 130/143 and print the command that
resumes).
"""

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else ("help", [])
    handler = _COMMANDS.get(command)
    if handler is None:
        print(f"hatcl: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handler(rest)
    except KeyboardInterrupt:  # Ctrl-C outside the task loop (which stops with a checkpoint)
        print(f"hatcl {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _help(_: Sequence[str]) -> int:
    print(USAGE, end="")
    return 0


def _list(args: Sequence[str]) -> int:
    from hatcl.cli_list import print_registries

    try:
        print_registries(list(args))
    except ValueError as error:
        print(f"hatcl list: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _version(_: Sequence[str]) -> int:
    from hatcl import __version__

    print(f"hatcl {__version__}")
    return 0


def _compare(args: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="hatcl compare", description="Compare finished runs, seeds pooled."
    )
    parser.add_argument("paths", nargs="+", help="run folders or folders holding runs (sweeps)")
    parser.add_argument(
        "--output", default="comparison.md", help="the table (figure: <stem>_aa.<format>)"
    )
    parser.add_argument("--format", default=None, help="md, csv or latex (default: extension)")
    parser.add_argument("--figure-format", default="png", help="png, svg or pdf")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    try:
        options = parser.parse_args(list(args))
    except SystemExit as stop:
        return EXIT_USAGE if stop.code else 0
    from hatcl.reporting.compare import compare

    try:
        table, table_path, figure_path = compare(
            options.paths,
            output=options.output,
            table_format=options.format,
            figure_format=options.figure_format,
            force=options.force,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"hatcl compare: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(table, end="")
    print(f"\ntable: {table_path}\nfigure: {figure_path}")
    return 0


def _report(args: Sequence[str]) -> int:
    from hatcl.reporting.report import report_command

    return report_command(args)


def _run(args: Sequence[str]) -> int:
    from hatcl.cli_run import run_command

    return run_command(args)


def _export(args: Sequence[str]) -> int:
    from hatcl.product.cli_export import export_command

    return export_command(args)


_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": _run,
    "export": _export,
    "compare": _compare,
    "report": _report,
    "list": _list,
    "help": _help,
    "--version": _version,
    "version": _version,
    "--help": _help,
    "-h": _help,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
