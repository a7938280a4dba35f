"""Plain inline SVG charts for the HTML reports: no script, hover values through ``<title>``.

Every data mark (heat-map cell, point, bar, box) carries ``data-value`` with the exact number it
shows, so tests (and readers of the page source) can check a mark against the run's files.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Viridis at five stops (dark: low, yellow: high).
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
FONT = 'font-family="sans-serif" font-size="11"'


def esc(text: object) -> str:
    """``text`` escaped for HTML/SVG text and attribute values."""
    return html.escape(str(text), quote=True)


def number(value: float | None, digits: int = 4) -> str:
    """A value as shown in hover texts and tables (``n/a`` for None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def colour(value: float, *, low: float = 0.0, high: float = 1.0) -> str:
    """The viridis colour of ``value`` on ``[low, high]`` (clipped)."""
    share = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    position = share * (len(VIRIDIS) - 1)
    index = min(int(position), len(VIRIDIS) - 2)
    frac = position - index
    rgb = [round(a + (b - a) * frac) for a, b in zip(VIRIDIS[index], VIRIDIS[index + 1])]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def svg(width: float, height: float, body: Sequence[str], *, label: str) -> str:
    """An ``<svg>`` element of the given size holding ``body``."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{esc(label)}" {FONT}>'
        + "".join(body)
        + "</svg>"
    )


def heat_map(
    grid: Sequence[Sequence[float | None]],
    *,
    rows: Sequence[str],
    columns: Sequence[str],
    label: str,
    low: float = 0.0,
    high: float = 1.0,
    digits: int = 2,
) -> str:
    """Cells coloured by value (None: blank); values written in the cells up to 20 columns."""
    cell = max(6.0, min(44.0, 520.0 / max(1, len(columns))))
    left, top = 8.0 + 7.0 * max(len(r) for r in rows), 20.0
    body = []
    for i, row in enumerate(grid):
        y = top + i * cell
        body.append(_text(left - 4, y + cell / 2 + 4, rows[i], anchor="end"))
        for j, value in enumerate(row):
            if value is None:
                continue
            x = left + j * cell
            tip = f"{rows[i]}, {columns[j]}: {number(value, 4)}"
            body.append(
                f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" '
                f'height="{cell:.1f}" fill="{colour(value, low=low, high=high)}" '
                f'data-row="{i}" data-col="{j}" data-value="{value!r}"><title>{esc(tip)}</title>'
                "</rect>"
            )
            if len(columns) <= 20:
                ink = "#000" if value > low + 0.6 * (high - low) else "#fff"
                body.append(_text(x + cell / 2, y + cell / 2 + 4, f"{value:.{digits}f}", fill=ink))
    every = max(1, math.ceil(len(columns) / 20))
    for j in range(0, len(columns), every):
        body.append(_text(left + (j + 0.5) * cell, top - 6, columns[j]))
    width, height = left + cell * len(columns) + 10, top + cell * len(rows) + 8
    return svg(width, height, body, label=label)


@dataclass(frozen=True)
class Series:
    """One line of a line chart; ``low``/``high`` draw a band around it (e.g. +- one std)."""

    name: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None


class Axes:
    """Data-to-pixel mapping of a plot area with its frame, ticks and labels."""

    def __init__(
        self,
        *,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        width: float = 560.0,
        height: float = 260.0,
        log: bool = False,
    ) -> None:
        self.log = log  # y on a log10 scale (y_range then holds positive values)
        low, high = (math.log10(v) for v in y_range) if log else y_range
        self.x_range, self.y_range = _widen(x_range), _widen((low, high))
        self.left, self.top, self.width, self.height = 56.0, 12.0, width, height

    def x(self, value: float) -> float:
        """Pixel column of ``value``."""
        low, high = self.x_range
        return self.left + (value - low) / (high - low) * self.width

    def y(self, value: float) -> float:
        """Pixel row of ``value``."""
        low, high = self.y_range
        if self.log:
            value = math.log10(max(value, 10.0**low))
        return self.top + (1.0 - (value - low) / (high - low)) * self.height

    def frame(self, *, x_label: str, y_label: str, x_ticks: Sequence[tuple[float, str]]) -> str:
        """Axis lines, ticks, grid and the two axis labels."""
        bottom, right = self.top + self.height, self.left + self.width
        parts = [f'<path d="M{self.left},{self.top}V{bottom}H{right}" stroke="#333" fill="none"/>']
        for value in _ticks(*self.y_range):
            if self.log and value != int(value):
                continue
            shown = 10.0**value if self.log else value
            y = self.y(shown)
            parts.append(f'<path d="M{self.left},{y:.1f}H{right}" stroke="#ddd"/>')
            parts.append(_text(self.left - 4, y + 4, f"{shown:g}", anchor="end"))
        for value, text in x_ticks:
            parts.append(_text(self.x(value), bottom + 14, text))
        parts.append(_text(self.left + self.width / 2, bottom + 30, x_label))
        middle = self.top + self.height / 2
        parts.append(
            f'<text x="12" y="{middle:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {middle:.1f})">{esc(y_label)}</text>'
        )
        return "".join(parts)

    def size(self, legend_rows: int = 0) -> tuple[float, float]:
        """The whole picture's width and height (room for labels and a legend)."""
        return self.left + self.width + 12, self.top + self.height + 40 + 16 * legend_rows


def line_chart(
    series: Sequence[Series],
    *,
    label: str,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    integer_x: bool = True,
    points: bool = True,
    size: tuple[float, float] = (560.0, 260.0),
) -> str:
    """Lines (with optional bands) and, when ``points``, a hoverable dot per value."""
    xs = [x for s in series for x in s.xs] or [0.0, 1.0]
    ys = [y for s in series for y in (*s.ys, *(s.low or ()), *(s.high or ()))] or [0.0, 1.0]
    bounds = y_range or (min(ys), max(ys))
    axes = Axes(x_range=(min(xs), max(xs)), y_range=bounds, width=size[0], height=size[1])
    ticks = sorted({int(x) for x in xs}) if integer_x else _ticks(*axes.x_range)
    step = max(1, math.ceil(len(ticks) / 20))
    body = [
        axes.frame(x_label=x_label, y_label=y_label, x_ticks=[(t, f"{t:g}") for t in ticks[::step]])
    ]
    for index, line in enumerate(series):
        body.append(_line(axes, line, PALETTE[index % len(PALETTE)], points=points))
    width, height = axes.size(len(series))
    body.extend(_legend([s.name for s in series], top=height - 16 * len(series)))
    return svg(width, height, body, label=label)


def _line(axes: Axes, line: Series, paint: str, *, points: bool) -> str:
    parts = [f'<g class="series" data-series="{esc(line.name)}">']
    if line.low is not None and line.high is not None:
        upper = [f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in zip(line.xs, line.high)]
        lower = [f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in zip(line.xs, line.low)]
        parts.append(
            f'<polygon class="band" points="{" ".join(upper + lower[::-1])}" fill="{paint}" '
            'fill-opacity="0.18" stroke="none"/>'
        )
    coords = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in zip(line.xs, line.ys))
    parts.append(f'<polyline points="{coords}" fill="none" stroke="{paint}" stroke-width="1.6"/>')
    for i, (x, y) in enumerate(zip(line.xs, line.ys) if points else ()):
        spread = ""
        if line.low is not None and line.high is not None:
            spread = f" (band {number(line.low[i])} to {number(line.high[i])})"
        parts.append(
            f'<circle class="point" cx="{axes.x(x):.1f}" cy="{axes.y(y):.1f}" r="3.2" '
            f'fill="{paint}" data-x="{x!r}" data-value="{y!r}"><title>'
            f"{esc(f'{line.name}: x={x:g}, {number(y)}{spread}')}</title></circle>"
        )
    return "".join(parts) + "</g>"


@dataclass(frozen=True)
class Bar:
    """One bar of a grouped bar chart (``error``: a +- whisker, e.g. one std)."""

    group: str
    series: str
    value: float
    error: float | None = None


def bar_chart(
    bars: Sequence[Bar], *, label: str, y_label: str, y_range: tuple[float, float] | None = None
) -> str:
    """Bars grouped by ``group`` along x, coloured by ``series``, hover: the value."""
    groups = list(dict.fromkeys(b.group for b in bars))
    names = list(dict.fromkeys(b.series for b in bars))
    tops = [b.value + (b.error or 0.0) for b in bars] or [1.0]
    bottoms = [b.value - (b.error or 0.0) for b in bars] or [0.0]
    bounds = y_range or (min(0.0, *bottoms), max(*tops, 1e-9))
    axes = Axes(x_range=(0.0, float(len(groups))), y_range=bounds)
    ticks = [(g + 0.5, name) for g, name in enumerate(groups)]
    body = [axes.frame(x_label="", y_label=y_label, x_ticks=ticks)]
    width = 0.8 / max(1, len(names))
    for bar in bars:
        g, s = groups.index(bar.group), names.index(bar.series)
        x0, x1 = axes.x(g + 0.1 + s * width), axes.x(g + 0.1 + (s + 1) * width)
        y = axes.y(max(bar.value, axes.y_range[0]))
        base = axes.y(max(0.0, axes.y_range[0]))
        tip = f"{bar.group}, {bar.series}: {number(bar.value)}"
        if bar.error is not None:
            tip += f" +- {number(bar.error)}"
        body.append(
            f'<rect class="bar" x="{x0:.1f}" y="{min(y, base):.1f}" width="{x1 - x0:.1f}" '
            f'height="{abs(base - y):.1f}" fill="{PALETTE[s % len(PALETTE)]}" '
            f'data-group="{esc(bar.group)}" data-series="{esc(bar.series)}" '
            f'data-value="{bar.value!r}"><title>{esc(tip)}</title></rect>'
        )
        if bar.error:
            mid, a, b = (x0 + x1) / 2, axes.y(bar.value - bar.error), axes.y(bar.value + bar.error)
            body.append(f'<path d="M{mid:.1f},{a:.1f}V{b:.1f}" stroke="#222"/>')
    full_width, height = axes.size(len(names) if len(names) > 1 else 0)
    if len(names) > 1:
        body.extend(_legend(names, top=height - 16 * len(names)))
    return svg(full_width, height, body, label=label)


@dataclass(frozen=True)
class Box:
    """A distribution as a box plot: whiskers at min and max, box at the quartiles."""

    group: str
    series: str
    low: float
    q1: float
    median: float
    q3: float
    high: float


def box_chart(boxes: Sequence[Box], *, label: str, y_label: str) -> str:
    """Boxes grouped by ``group`` along x, coloured by ``series``; hover: the five numbers.

    Positive values spanning more than two decades are drawn on a log scale.
    """
    groups = list(dict.fromkeys(b.group for b in boxes))
    names = list(dict.fromkeys(b.series for b in boxes))
    values = [v for b in boxes for v in (b.low, b.high)] or [0.0, 1.0]
    log = min(values) > 0 and max(values) / min(values) > 100
    bounds = (min(values), max(values)) if log else (min(0.0, *values), max(1.0, *values))
    axes = Axes(x_range=(0.0, float(len(groups))), y_range=bounds, log=log)
    y_label += " (log scale)" if log else ""
    ticks = [(g + 0.5, name) for g, name in enumerate(groups)]
    body = [axes.frame(x_label="", y_label=y_label, x_ticks=ticks)]
    width = 0.8 / max(1, len(names))
    for box in boxes:
        g, s = groups.index(box.group), names.index(box.series)
        x0, x1 = axes.x(g + 0.1 + (s + 0.15) * width), axes.x(g + 0.1 + (s + 0.85) * width)
        mid, paint = (x0 + x1) / 2, PALETTE[s % len(PALETTE)]
        tip = (
            f"{box.group}, {box.series}: min {number(box.low)}, q1 {number(box.q1)}, median "
            f"{number(box.median)}, q3 {number(box.q3)}, max {number(box.high)}"
        )
        body.append(
            f'<g class="box" data-group="{esc(box.group)}" data-series="{esc(box.series)}" '
            f'data-value="{box.median!r}"><title>{esc(tip)}</title>'
            f'<path d="M{mid:.1f},{axes.y(box.low):.1f}V{axes.y(box.high):.1f}" stroke="#333"/>'
            f'<rect x="{x0:.1f}" y="{axes.y(box.q3):.1f}" width="{x1 - x0:.1f}" '
            f'height="{max(1.0, axes.y(box.q1) - axes.y(box.q3)):.1f}" fill="{paint}" '
            f'fill-opacity="0.6" stroke="{paint}"/>'
            f'<path d="M{x0:.1f},{axes.y(box.median):.1f}H{x1:.1f}" stroke="#000"/></g>'
        )
    full_width, height = axes.size(len(names))
    body.extend(_legend(names, top=height - 16 * len(names)))
    return svg(full_width, height, body, label=label)


def _legend(names: Sequence[str], *, top: float) -> list[str]:
    return [
        f'<rect x="60" y="{top + 16 * i + 2:.0f}" width="10" height="10" '
        f'fill="{PALETTE[i % len(PALETTE)]}"/>' + _text(76, top + 16 * i + 11, name, anchor="start")
        for i, name in enumerate(names)
    ]


def _text(x: float, y: float, text: object, *, anchor: str = "middle", fill: str = "#222") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{esc(text)}</text>'


def _widen(bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = float(bounds[0]), float(bounds[1])
    if high - low < 1e-12:
        return low - 0.5, high + 0.5
    return low, high


def _ticks(low: float, high: float) -> list[float]:
    """About five round tick values within ``[low, high]`` (widened when empty)."""
    low, high = _widen((low, high))
    span = high - low
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]
