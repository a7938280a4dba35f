"""The masks of a run for its report: read from the last checkpoint, overlap, mask images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hatcl.reporting.svg import PALETTE, colour, esc, heat_map, svg

#: Colours of a mask image: a unit the task uses alone, one it shares, one it leaves free.
OWN, SHARED, FREE = "#4c9be8", "#1b3f8b", "#eeeeee"
MASK_WIDTH = 640.0


@dataclass(frozen=True)
class LayerMasks:
    """The binary masks of one layer: ``rows[i][u]`` is 1 where task ``task_ids[i]`` uses unit u."""

    layer: str
    task_ids: tuple[int, ...]
    rows: tuple[tuple[float, ...], ...]


def read_masks(run_dir: str | Path) -> list[LayerMasks]:
    """Every stored task's mask per layer, from the run's last checkpoint (``weights_only``).

    Reads the first mask store of the model's state (``...store.task_ids`` and
    ``...store.masks_<layer>`` buffers); a run without checkpoints or without masks (an
    algorithm of no mask) gives ``[]``.
    """
    from hatcl.reporting.checkpoint_file import latest_checkpoint, load_checkpoint

    path = latest_checkpoint(run_dir)
    if path is None:
        return []
    state = load_checkpoint(path).get("model", {})
    prefixes = [name[: -len("task_ids")] for name in state if name.endswith("store.task_ids")]
    if not prefixes:
        return []
    prefix = prefixes[0]
    task_ids = tuple(int(t) for t in state[f"{prefix}task_ids"].tolist())
    found = []
    for name, tensor in state.items():
        if name.startswith(f"{prefix}masks_"):
            rows = tuple(tuple(float(v) for v in row) for row in tensor.double().tolist())
            found.append(LayerMasks(name[len(f"{prefix}masks_") :], task_ids, rows))
    return found


def overlap(rows: Sequence[Sequence[float]]) -> list[list[float | None]]:
    """Task x task overlap of binary masks: |m_i and m_j| / |m_i or m_j| (None: both empty)."""
    sets = [{u for u, value in enumerate(row) if value > 0.5} for row in rows]
    return [[_jaccard(a, b) for b in sets] for a in sets]


def _jaccard(a: set[int], b: set[int]) -> float | None:
    union = len(a | b)
    return None if union == 0 else len(a & b) / union


def overlap_svg(layer: LayerMasks) -> str:
    """The overlap matrix of one layer as a heat map."""
    names = [f"task {t}" for t in layer.task_ids]
    return heat_map(
        overlap(layer.rows),
        rows=names,
        columns=[str(t) for t in layer.task_ids],
        label=f"mask overlap {layer.layer}",
    )


def mask_svg(layer: LayerMasks) -> str:
    """Units (x) by tasks (rows): used alone, shared with another task, or free; a last row
    with the number of tasks using each unit. Runs of equal cells are drawn as one rectangle."""
    units = len(layer.rows[0]) if layer.rows else 0
    users = [sum(row[u] > 0.5 for row in layer.rows) for u in range(units)]
    width, height, left, top = MASK_WIDTH / max(1, units), 16.0, 70.0, 16.0
    body = []
    for i, (task, row) in enumerate(zip(layer.task_ids, layer.rows)):
        states = [_state(row[u] > 0.5, users[u]) for u in range(units)]
        y = top + i * (height + 2)
        body.append(f'<text x="{left - 6}" y="{y + 12:.0f}" text-anchor="end">task {task}</text>')
        used = sum(state != "free" for state in states)
        body.append(
            f'<g class="mask-row" data-task="{task}" data-used="{used}" data-units="{units}">'
        )
        for start, end, state in _runs(states):
            tip = f"task {task}, units {start}-{end - 1}: {state}"
            body.append(_cell(left + start * width, y, (end - start) * width, height, state, tip))
        body.append("</g>")
    y = top + len(layer.rows) * (height + 2) + 4
    body.append(f'<text x="{left - 6}" y="{y + 12:.0f}" text-anchor="end">tasks</text>')
    for start, end, count in _runs(users):
        paint = colour(count, low=0, high=max(1, len(layer.rows)))
        tip = f"units {start}-{end - 1}: used by {count} task(s)"
        body.append(
            f'<rect class="users" x="{left + start * width:.2f}" y="{y:.0f}" '
            f'width="{(end - start) * width:.2f}" height="{height:.0f}" fill="{paint}" '
            f'data-value="{count}"><title>{esc(tip)}</title></rect>'
        )
    body.append(_mask_legend(left, y + height + 16))
    total = top + (len(layer.rows) + 1) * (height + 2) + 44
    return svg(left + MASK_WIDTH + 10, total, body, label=f"masks {layer.layer}")


def mask_usage_rows(tasks: Sequence[Mapping]) -> dict[str, list[tuple[int, float, float]]]:
    """Per layer: (task, fraction of units in the task's mask, in the cumulative mask)."""
    found: dict[str, list[tuple[int, float, float]]] = {}
    for record in tasks:
        for layer, usage in (record.get("mask_usage") or {}).items():
            row = (int(record["task"]), float(usage["task"]), float(usage["cumulative"]))
            found.setdefault(layer, []).append(row)
    return found


def _state(used: bool, users: int) -> str:
    if not used:
        return "free"
    return "shared" if users > 1 else "own"


def _runs(values: Sequence) -> list[tuple[int, int, object]]:
    """``(start, end, value)`` of each run of equal consecutive values."""
    runs: list[tuple[int, int, object]] = []
    for index, value in enumerate(values):
        if runs and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], index + 1, value)
        else:
            runs.append((index, index + 1, value))
    return runs


def _cell(x: float, y: float, width: float, height: float, state: str, tip: str) -> str:
    paint = {"own": OWN, "shared": SHARED, "free": FREE}[state]
    return (
        f'<rect class="unit {state}" x="{x:.2f}" y="{y:.0f}" width="{width:.2f}" '
        f'height="{height:.0f}" fill="{paint}"><title>{esc(tip)}</title></rect>'
    )


def _mask_legend(left: float, y: float) -> str:
    items = (
        ("used by this task only", OWN),
        ("shared with another task", SHARED),
        ("free", FREE),
        ("row 'tasks': number of tasks using the unit", PALETTE[7]),
    )
    parts, x = [], left
    for text, paint in items[:3]:
        parts.append(
            f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{paint}" '
            'stroke="#999"/>'
        )
        parts.append(f'<text x="{x + 14:.0f}" y="{y:.0f}">{esc(text)}</text>')
        x += 14 + 6.5 * len(text) + 16
    parts.append(f'<text x="{x:.0f}" y="{y:.0f}" fill="#555">{esc(items[3][0])}</text>')
    return "".join(parts)
