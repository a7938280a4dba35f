"""The comparison table written as Markdown, CSV or LaTeX (``hatcl compare --format``).

Every format writes the same rows (:class:`TableRow`): one per configuration, the number of
runs, and mean and sample std of each metric of :data:`hatcl.reporting.compare.METRICS`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hatcl.registry import Registry

TABLE_FORMATS = Registry("table format")
TABLE_FORMATS.add("md", "hatcl.reporting.table_formats:markdown", summary="Markdown table")
TABLE_FORMATS.add("csv", "hatcl.reporting.table_formats:csv_table", summary="CSV, mean and std")
TABLE_FORMATS.add("latex", "hatcl.reporting.table_formats:latex", summary="LaTeX booktabs")
#: File extensions that name a table format (``--output t.csv`` writes CSV).
EXTENSIONS = {".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "latex", ".latex": "latex"}
FIGURE_FORMATS = ("png", "svg", "pdf")


@dataclass(frozen=True)
class TableRow:
    """One configuration's row: ``cells`` holds (mean, std) per metric (None: undefined)."""

    label: str
    runs: int
    seeds: tuple[str, ...]
    cells: tuple[tuple[float | None, float | None], ...]
    repeated: bool
    note: str = ""


def table_format_for(output: str | Path, table_format: str | None) -> str:
    """The format given, or the one ``output``'s extension names.

    Raises:
        ValueError: an unknown format, or an extension that names none (and no format given).
    """
    if table_format is not None:
        return TABLE_FORMATS.validate(table_format, parameter="--format")
    suffix = Path(output).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValueError(
            f"cannot tell the table format from {str(output)!r}: give --format "
            f"({', '.join(TABLE_FORMATS.names())}) or an output ending in "
            f"{', '.join(EXTENSIONS)}"
        )
    return EXTENSIONS[suffix]


def check_figure_format(figure_format: str) -> str:
    """``figure_format`` if it is one of :data:`FIGURE_FORMATS`; ``ValueError`` otherwise."""
    if figure_format not in FIGURE_FORMATS:
        raise ValueError(
            f"unknown --figure-format {figure_format!r}; valid: {', '.join(FIGURE_FORMATS)}"
        )
    return figure_format


def markdown(header: Sequence[str], rows: Sequence[TableRow]) -> str:
    """A Markdown table, ``mean ± std``; notes (e.g. runs sharing a seed) below it."""
    lines = [
        "| " + " | ".join(["configuration", "n", *header]) + " |",
        "|" + "---|" * (len(header) + 2),
    ]
    for row in rows:
        label = f"{row.label} (same seed: no std)" if row.repeated else row.label
        cells = [_text(mean, std, plus=" ± ") for mean, std in row.cells]
        lines.append("| " + " | ".join([label, str(row.runs), *cells]) + " |")
    notes = [row.note for row in rows if row.note]
    return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in notes)


def csv_table(header: Sequence[str], rows: Sequence[TableRow]) -> str:
    """CSV: configuration, n, seeds, then ``<metric>_mean`` and ``<metric>_std`` columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [f"{name}_{part}" for name in header for part in ("mean", "std")]
    writer.writerow(["configuration", "n", "seeds", *columns])
    for row in rows:
        values = [_raw(v) for mean, std in row.cells for v in (mean, std)]
        writer.writerow([row.label, row.runs, " ".join(row.seeds), *values])
    return buffer.getvalue()


def latex(header: Sequence[str], rows: Sequence[TableRow]) -> str:
    """A booktabs ``tabular``: ``$mean \\pm std$`` cells; notes as LaTeX comments."""
    lines = [
        "\\begin{tabular}{l r " + "r " * len(header) + "}",
        "\\toprule",
        " & ".join(["configuration", "$n$", *(_tex(h) for h in header)]) + " \\\\",
        "\\midrule",
    ]
    for row in rows:
        cells = [_tex_cell(mean, std) for mean, std in row.cells]
        lines.append(" & ".join([_tex(row.label), str(row.runs), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"% {row.note}" for row in rows if row.note]
    return "\n".join(lines) + "\n"


def _text(mean: float | None, std: float | None, *, plus: str) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" if std is None else f"{mean:.4f}{plus}{std:.4f}"


def _tex_cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"${mean:.4f}$" if std is None else f"${mean:.4f} \\pm {std:.4f}$"


def _raw(value: float | None) -> str:
    return "" if value is None else repr(float(value))


_TEX_SPECIAL = {c: f"\\{c}" for c in "&%$#_{}"}
_TEX_SPECIAL.update(
    {"~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "\\": "\\textbackslash{}"}
)


def _tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(c, c) for c in text)
