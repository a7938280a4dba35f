"""The HTML page around a report's figures: inline style and one small inline script, nothing
fetched (no CDN, no font, no image file): the page reads the same offline and as an e-mail
attachment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hatcl.reporting.svg import esc, number

STYLE = """
body{font-family:sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
figure{margin:14px 0 22px;padding:8px;border:1px solid #e4e4e4;border-radius:4px;overflow-x:auto}
figcaption{font-size:13px;color:#444;margin-bottom:6px}figcaption b{color:#111}
.small-multiples{display:flex;flex-wrap:wrap;gap:14px}.small-multiples div{font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
th.sortable{cursor:pointer;background:#f3f3f3}th.sortable:after{content:" \\2195";color:#999}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto}
.note{color:#666;font-size:12px}
"""

#: Click a column header of a ``table.sortable`` to sort its rows by that column (numbers by
#: the cell's ``data-sort``, text otherwise); a second click reverses the order.
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.classList.add('sortable');
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var descending = th.dataset.order !== 'desc';
      th.dataset.order = descending ? 'desc' : 'asc';
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def page(title: str, sections: Sequence[str], *, subtitle: str = "") -> str:
    """A whole self-contained HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="note">{esc(subtitle)}</p>'
        + "\n".join(sections)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def figure(key: str, title: str, source: str, content: str) -> str:
    """A figure with its caption: what it shows and which file it is computed from."""
    return (
        f'<figure class="report-figure" id="figure-{esc(key)}" data-figure="{esc(key)}">'
        f"<figcaption><b>{esc(title)}</b>. {esc(source)}</figcaption>{content}</figure>"
    )


def small_multiples(panels: Mapping[str, str]) -> str:
    """Several small pictures side by side, each under its name (e.g. one per layer)."""
    return (
        '<div class="small-multiples">'
        + "".join(f"<div><b>{esc(name)}</b><br>{body}</div>" for name, body in panels.items())
        + "</div>"
    )


def section(heading: str, *parts: str) -> str:
    """A titled section."""
    return f"<section><h2>{esc(heading)}</h2>{''.join(parts)}</section>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, sortable: bool = False) -> str:
    """An HTML table; a cell given as ``(text, sort_value)`` sorts by the value."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    css = ' class="sortable"' if sortable else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(cell: Any) -> str:
    if isinstance(cell, tuple):
        text, key = cell
    elif isinstance(cell, float):
        text, key = number(cell), cell
    else:
        text, key = ("n/a" if cell is None else cell), ("" if cell is None else cell)
    return f'<td data-sort="{esc(key)}">{esc(text)}</td>'
