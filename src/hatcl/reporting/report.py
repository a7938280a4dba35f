"""``hatcl report``: the HTML report of a run folder or of a sweep folder."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

REPORT_NAME = "report.html"
#: Written in every report's head: a file holding it may be replaced by a new report.
GENERATOR = '<meta name="generator" content="hatcl report">'
EXIT_USAGE = 2


def report_target(
    folder: str | Path, *, out: str | Path | None = None, force: bool = False
) -> Path:
    """Where the report of ``folder`` goes; checked before anything is read or written.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: the target exists and is not a hatcl report (without ``force``), or is a
            folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is not a folder (expected a run or sweep folder)")
    target = Path(out) if out is not None else root / REPORT_NAME
    if target.is_dir():
        raise ValueError(f"--out {str(target)!r} is a folder; give a file such as report.html")
    if target.exists() and not force and not _is_report(target):
        raise ValueError(
            f"{str(target)!r} exists and is not a hatcl report; hatcl report never overwrites "
            "another file: give another --out or add --force to replace it"
        )
    return target


def report_html(folder: str | Path) -> str:
    """The report page: a run's when ``folder`` holds ``metrics.json``, else a sweep's."""
    root = Path(folder)
    if (root / "metrics.json").is_file():
        from hatcl.reporting.run_report import run_report_html

        text = run_report_html(root)
    else:
        from hatcl.reporting.sweep_report import sweep_report_html

        text = sweep_report_html([root], title=root.name or str(root))
    return text.replace("<head>", f"<head>{GENERATOR}", 1)


def write_report(folder: str | Path, *, out: str | Path | None = None, force: bool = False) -> Path:
    """Write the report of ``folder`` (a run or a sweep) to ``out`` or ``<folder>/report.html``.

    Returns:
        the file written.
    """
    from hatcl.reporting.run_folder import write_text

    target = report_target(folder, out=out, force=force)
    text = report_html(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, text)
    return target


def write_sweep_report(
    paths: Sequence[str | Path], *, out: str | Path, title: str, force: bool = False
) -> Path:
    """Write the sweep report of the runs found under ``paths`` to ``out``; return it."""
    from hatcl.reporting.run_folder import write_text
    from hatcl.reporting.sweep_report import sweep_report_html

    target = report_target(Path(out).parent, out=out, force=force)
    text = sweep_report_html(paths, title=title).replace("<head>", f"<head>{GENERATOR}", 1)
    write_text(target, text)
    return target


def report_command(args: Sequence[str]) -> int:
    """``hatcl report RUN_OR_SWEEP [--out FILE] [--force]``; returns the exit code."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="hatcl report",
        description="Write a self-contained HTML report of a run folder or a sweep folder.",
    )
    parser.add_argument("folder", help="a run folder (metrics.json) or a folder holding runs")
    parser.add_argument("--out", default=None, help="the HTML file (default: <folder>/report.html)")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    try:
        options = parser.parse_args(list(args))
    except SystemExit as stop:
        return EXIT_USAGE if stop.code else 0
    try:
        written = write_report(options.folder, out=options.out, force=options.force)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"hatcl report: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report: {written}")
    return 0


def _is_report(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return GENERATOR in handle.read(4096)
    except OSError:
        return False
