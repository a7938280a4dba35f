"""The run folder: created once, never overwritten; JSON and CSV outputs written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RUN_MARKERS = ("config.yaml", "metrics.json")


def check_output_dir(path: str | os.PathLike[str] | None) -> Path:
    """Check that a new run may be written to ``path``, creating nothing; return it.

    ``path`` must be absent (and creatable) or an empty folder: a folder holding a run is never
    overwritten, and a folder holding anything else is not hatcl's to write into.

    Raises:
        ValueError: naming the folder and what is wrong with it.
    """
    if path is None or not str(path).strip():
        raise ValueError(
            f"output_dir={path!r} is empty; give the folder for the run (absent or empty), "
            "or leave output_dir unset for runs/<time>"
        )
    run_dir = Path(path).expanduser()
    if run_dir.exists() or run_dir.is_symlink():
        _check_existing(run_dir)
    else:
        _check_creatable(run_dir)
    return run_dir


def _check_existing(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ValueError(
            f"output_dir {str(run_dir)!r} exists and is not a folder; give a new or empty folder"
        )
    taken = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    if taken:
        raise ValueError(
            f"output_dir {str(run_dir)!r} already holds a run ({', '.join(taken)}); a run folder "
            "is never overwritten: choose another output_dir, leave it unset for a new one, or "
            f"continue an interrupted run with resume={run_dir}"
        )
    entries = sorted(entry.name for entry in run_dir.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(
            f"output_dir {str(run_dir)!r} is not empty and holds no hatcl run ({shown}); hatcl "
            "writes a run only into a new or empty folder: choose another output_dir"
        )
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir {str(run_dir)!r} is not writable (no permission)")


def _check_creatable(run_dir: Path) -> None:
    ancestor = run_dir.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(
            f"output_dir {str(run_dir)!r} cannot be created: {str(ancestor)!r} is a file, not a "
            "folder"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(
            f"output_dir {str(run_dir)!r} cannot be created: no write permission in "
            f"{str(ancestor)!r}"
        )


def prepare_run_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (or accept an empty folder) after :func:`check_output_dir`."""
    run_dir = check_output_dir(path)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def user_file_mode() -> int:
    """The mode a new file gets from ``open()``: 0o666 less the process's umask."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def make_user_file(prefix: str, *, folder: Path, suffix: str = "") -> tuple[int, str]:
    """``tempfile.mkstemp`` (private, 0600) then the mode of an ordinary new file (umask)."""
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.fchmod(descriptor, user_file_mode())
    return descriptor, temporary


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temporary file in the same folder, then rename).

    The file gets the mode any new file of the user gets (0o666 less the umask), like
    ``run.log`` and the loggers' files, not ``mkstemp``'s private 0600.
    """
    descriptor, temporary = make_user_file(f".{path.name}.", folder=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    write_text(path, json.dumps(payload, indent=2) + "\n")


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV table, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def write_accuracy_matrix(path: Path, matrix: Sequence[Sequence[float]]) -> None:
    """Row t = after training task t, column tau = test task tau (blank above the diagonal)."""
    tasks = len(matrix)
    header = ["after_task", *(f"task_{tau}" for tau in range(1, tasks + 1))]
    rows = (
        [t + 1, *(f"{a:.6f}" for a in row), *([""] * (tasks - len(row)))]
        for t, row in enumerate(matrix)
    )
    write_rows(path, header, rows)


def write_curves(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Per-step and per-epoch training records as CSV (union of keys as columns)."""
    columns: list[str] = []
    for record in records:
        columns.extend(key for key in record if key not in columns)
    write_rows(path, columns, ([record.get(c, "") for c in columns] for record in records))
