"""Compare finished runs: group by configuration (seeds pooled), tabulate and plot.

Torch-free: reads ``config.yaml`` and ``metrics.json`` of each run folder.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatcl.mappings import flatten_mapping

# Keys that do not change what a run computes: runs differing only here are pooled.
POOLED_KEYS = (
    "seed",
    "output_dir",
    "resume",
    "trainer.enable_progress_bar",
    "trainer.loggers",
    "trainer.figures",
    "trainer.report",
    "trainer.checkpoints",
    "trainer.num_threads",
)
METRICS = (
    ("AA", "average_accuracy"),
    ("BWT", "bwt"),
    ("forgetting", "forgetting"),
    ("FWT", "fwt"),
    ("capacity", "final_capacity"),
)
#: Columns added when a run was tested without the task id (``head=cil``/``dil``): its AA above
#: is then task-agnostic. Runs of different heads are never pooled (``head`` is no pooled key).
TASK_AGNOSTIC_METRICS = (
    ("AA TAw", "average_accuracy_task_aware"),
    ("task-id acc", "average_task_id_accuracy"),
)


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its folder, flattened configuration and metrics."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class RunGroup:
    """Runs of one configuration (any seeds) and the label that tells it from the others."""

    label: str
    runs: tuple[RunRecord, ...]

    def values(self, key: str) -> list[float]:
        """The defined values of metric ``key`` over the group's runs."""
        return [run.metrics[key] for run in self.runs if run.metrics.get(key) is not None]

    def repeated_seeds(self) -> list[Any]:
        """Seeds shared by two or more of the group's runs (repeats, not independent samples)."""
        seeds = [run.config.get("seed") for run in self.runs]
        return sorted({seed for seed in seeds if seeds.count(seed) > 1}, key=str)

    def seeds(self) -> tuple[str, ...]:
        """The seeds of the group's runs, in run order (repeats kept)."""
        return tuple(str(run.config.get("seed")) for run in self.runs)

    def aa_curves(self) -> list[list[float]]:
        """AA after each task, per run."""
        return [_aa_curve(run.metrics) for run in self.runs]


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders (holding ``metrics.json``) given directly or found below the given folders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise FileNotFoundError(
                f"{str(path)!r} is not a folder (expected a run or sweep folder)"
            )
        if (path / "metrics.json").is_file():
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob("metrics.json"))
        if not below:
            raise FileNotFoundError(f"no finished run (metrics.json) in or below {str(path)!r}")
        found.extend(below)
    return list(dict.fromkeys(found))


def load_run(path: Path) -> RunRecord:
    """Read a run folder's ``config.yaml`` and ``metrics.json``."""
    import yaml

    config_file = path / "config.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    return RunRecord(path=path, config=flatten_mapping(config or {}), metrics=metrics)


def group_runs(runs: Sequence[RunRecord]) -> list[RunGroup]:
    """Group runs whose configurations agree except for :data:`POOLED_KEYS`.

    Each group's label is the algorithm's name followed by the keys whose values tell the groups
    apart.
    """
    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(_identity(run.config), []).append(run)
    configs = [dict(identity) for identity in groups]
    keys = sorted({key for config in configs for key in config})
    varying_keys = [key for key in keys if len({config.get(key) for config in configs}) > 1]
    return [
        RunGroup(label=_label(config, configs, varying_keys), runs=tuple(members))
        for config, members in zip(configs, groups.values())
    ]


def _label(config: Mapping[str, Any], configs: Sequence[Mapping[str, Any]], varying: list) -> str:
    """The algorithm's name and the other keys that tell ``config`` apart.

    An algorithm option is shown only where it varies among groups of the same algorithm (an
    option another algorithm lacks is not a difference worth a label).
    """
    name = str(config.get("algorithm.name", "run"))
    same_algorithm = [c for c in configs if c.get("algorithm.name") == config.get("algorithm.name")]
    parts = [
        f"{key}={_short(config.get(key))}"
        for key in varying
        if key != "algorithm.name"
        and (not key.startswith("algorithm.") or len({c.get(key) for c in same_algorithm}) > 1)
    ]
    return f"{name} ({', '.join(parts)})" if parts else name


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None where undefined)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def table_rows(groups: Sequence[RunGroup]) -> list:
    """One :class:`~hatcl.reporting.table_formats.TableRow` per group: n, seeds, mean +- std.

    With runs tested without the task id, the task-aware AA and the task-id accuracy follow.

    A group whose runs share a seed is flagged: its std is not computed (repeats of one seed are
    not independent samples) and its note names the seed and the folders.
    """
    from hatcl.reporting.table_formats import TableRow

    metrics = table_metrics(groups)
    rows = []
    for group in groups:
        repeated = bool(group.repeated_seeds())
        cells = []
        for _, key in metrics:
            mean, std = mean_std(group.values(key))
            cells.append((mean, None if repeated else std))
        note = same_seed_note(group) if repeated else ""
        runs = len(group.runs)
        rows.append(TableRow(group.label, runs, group.seeds(), tuple(cells), repeated, note))
    return rows


def format_table(groups: Sequence[RunGroup], table_format: str = "md") -> str:
    """The comparison table in ``table_format`` (md, csv or latex)."""
    from hatcl.reporting.table_formats import TABLE_FORMATS

    writer = TABLE_FORMATS.get(TABLE_FORMATS.validate(table_format, parameter="--format"))
    return writer([label for label, _ in table_metrics(groups)], table_rows(groups))


def table_metrics(groups: Sequence[RunGroup]) -> list[tuple[str, str]]:
    """The columns: AA .. capacity, then TAw AA and task-id accuracy when a run has them."""
    metrics = list(METRICS)
    if any(group.values("average_accuracy_task_aware") for group in groups):
        metrics.extend(TASK_AGNOSTIC_METRICS)
    return metrics


def markdown_table(groups: Sequence[RunGroup]) -> str:
    """One row per group: n and mean +- std of AA, BWT, forgetting, FWT and capacity (n/a if
    unknown); runs sharing a seed get no std and a note under the table."""
    return format_table(groups, "md")


def same_seed_note(group: RunGroup) -> str:
    """Why a group's std is missing: which seed repeats, in which folders."""
    seeds = group.repeated_seeds()
    folders = [str(run.path) for run in group.runs if run.config.get("seed") in seeds]
    return (
        f"Note: {group.label}: {len(folders)} runs share seed {', '.join(map(str, seeds))} "
        f"({', '.join(folders)}); runs of one seed repeat each other, so the mean is shown "
        "without a std. Pool runs of different seeds (seed=1,2,3) for a std."
    )


def aa_figure(groups: Sequence[RunGroup]):
    """AA after each task per group: the mean over runs, with a band of +- one std."""
    from hatcl.reporting.figures import new_figure

    figure = new_figure(6.0, 4.0)
    axes = figure.add_subplot()
    longest = 1
    for group in groups:
        curves = group.aa_curves()
        tasks = min(len(curve) for curve in curves)
        longest = max(longest, tasks)
        columns = [[curve[t] for curve in curves] for t in range(tasks)]
        means = [statistics.fmean(column) for column in columns]
        stds = [statistics.stdev(column) if len(column) > 1 else 0.0 for column in columns]
        steps = list(range(1, tasks + 1))
        axes.plot(steps, means, marker="o", label=f"{group.label} (n={len(curves)})")
        axes.fill_between(
            steps,
            [m - s for m, s in zip(means, stds)],
            [m + s for m, s in zip(means, stds)],
            alpha=0.2,
        )
    axes.set_xticks(range(1, longest + 1))
    axes.set_xlabel("after training task")
    axes.set_ylabel("average accuracy over seen tasks")
    axes.set_ylim(0.0, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title("AA after each task")
    return figure


def compare(
    paths: Iterable[str | Path],
    *,
    output: str | Path,
    table_format: str | None = None,
    figure_format: str = "png",
    force: bool = False,
) -> tuple[str, Path, Path]:
    """Group the runs under ``paths``; write the table and the AA figure.

    Args:
        paths: run folders or folders holding runs.
        output: the table's file; its extension names the format when ``table_format`` is None.
        table_format: ``md``, ``csv`` or ``latex``.
        figure_format: ``png``, ``svg`` or ``pdf`` (the figure is ``<output stem>_aa.<format>``).
        force: replace existing files (otherwise an existing table or figure is refused).

    Returns:
        the table text, the table's path and the figure's path.

    Raises:
        ValueError: an unknown format, or a file that exists (without ``force``); checked before
            any run is read or any file written.
        FileNotFoundError: a path that is not a folder or holds no finished run.
    """
    from hatcl.reporting.table_formats import check_figure_format, table_format_for

    chosen = table_format_for(output, table_format)
    table_path = Path(output)
    figure_path = table_path.with_name(f"{table_path.stem}_aa.{check_figure_format(figure_format)}")
    existing = [str(p) for p in (table_path, figure_path) if p.exists() or p.is_symlink()]
    if existing and not force:
        raise ValueError(
            f"{' and '.join(existing)} already exist(s); hatcl compare never overwrites a file: "
            "give another --output or add --force to replace it"
        )
    groups = group_runs([load_run(path) for path in find_runs(paths)])
    table = format_table(groups, chosen)
    from hatcl.reporting.figures import save_figure

    table_path.parent.mkdir(parents=True, exist_ok=True)
    table_path.write_text(table, encoding="utf-8")
    save_figure(aa_figure(groups), figure_path)
    return table, table_path, figure_path


def _identity(config: Mapping[str, Any]) -> tuple:
    return tuple(
        sorted((key, _hashable(value)) for key, value in config.items() if key not in POOLED_KEYS)
    )


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return str(value)


def _aa_curve(metrics: Mapping[str, Any]) -> list[float]:
    curve = metrics.get("average_accuracy_per_task")
    if curve:
        return [float(value) for value in curve]
    return [sum(row) / len(row) for row in metrics["accuracy_matrix"]]
