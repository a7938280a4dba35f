"""Reference-based metrics: forward transfer against an ``independent`` run of the same data.

``reference_run`` names either a finished run folder of the ``independent`` algorithm (its
accuracy-matrix diagonal a_ind[tau][tau] is the single-task reference b[tau]) or ``auto``: the
independent run is trained on demand in ``<run folder>/reference`` with the same data, seed,
backbone, optimizer and trainer. The runner obtains the reference before training, so a wrong
``reference_run`` fails before any time is spent.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatcl.metrics.continual import forward_transfer

if TYPE_CHECKING:
    from hatcl.training.experiment import ExperimentConfig

AUTO = "auto"
REFERENCE_ALGORITHM = "independent"
REFERENCE_SUBFOLDER = "reference"


def forward_transfer_or_none(
    matrix: Sequence[Sequence[float]], reference: Sequence[float] | None
) -> float | None:
    """FWT of ``matrix`` against ``reference`` (``None`` without a reference or with T = 1)."""
    return None if reference is None else forward_transfer(matrix, reference)


def external_reference(config: ExperimentConfig) -> list[float]:
    """b[tau] for tau = 1..T from the finished ``independent`` run folder ``reference_run``.

    Raises:
        FileNotFoundError: if the reference folder holds no ``metrics.json``.
        ValueError: if the reference is not an ``independent`` run of the same data and seed,
            or has fewer tasks than ``config``.
    """
    folder = Path(str(config.reference_run))
    reference = read_reference(folder, config=config)
    if len(reference) < config.data.num_tasks:
        raise ValueError(
            f"reference_run {str(folder)!r} has {len(reference)} tasks; this run has "
            f"{config.data.num_tasks}"
        )
    return reference


def reference_config(config: ExperimentConfig) -> ExperimentConfig:
    """The ``independent`` run that ``reference_run=auto`` trains for ``config``."""
    from hatcl.config import ComponentConfig

    return dataclasses.replace(
        config, algorithm=ComponentConfig(name=REFERENCE_ALGORITHM), reference_run=None
    )


def diagonal(matrix: Sequence[Sequence[float]]) -> list[float]:
    """``a[tau][tau]`` for each task: the accuracy on a task right after training it."""
    return [float(row[index]) for index, row in enumerate(matrix)]


def read_reference(folder: Path, *, config: ExperimentConfig | None = None) -> list[float]:
    """The diagonal of a run folder's accuracy matrix (checked against ``config`` if given).

    Raises:
        FileNotFoundError: if ``folder`` holds no ``metrics.json``.
        ValueError: if the folder's run is not an ``independent`` run of the same data and seed.
    """
    path = folder / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"reference_run {str(folder)!r} holds no metrics.json; give the folder of a finished "
            f"'{REFERENCE_ALGORITHM}' run, or reference_run=auto to compute one"
        )
    matrix = json.loads(path.read_text(encoding="utf-8"))["accuracy_matrix"]
    if config is not None:
        check_reference_config(folder, config=config)
    return diagonal(matrix)


def check_reference_config(folder: Path, *, config: ExperimentConfig) -> None:
    """``ValueError`` unless the reference folder's config is ``independent`` on the same data."""
    saved = _load_config(folder / "config.yaml")
    if saved is None:
        return
    from hatcl.data.base import DataConfig

    name = (saved.get("algorithm") or {}).get("name")
    if name != REFERENCE_ALGORITHM:
        raise ValueError(
            f"reference_run {str(folder)!r} is a {name!r} run; the FWT reference must be an "
            f"'{REFERENCE_ALGORITHM}' run"
        )
    if saved.get("seed") != config.seed:
        raise ValueError(
            f"reference_run {str(folder)!r} used seed {saved.get('seed')}, this run seed "
            f"{config.seed}; the reference must use the same data and seed"
        )
    if DataConfig.from_mapping(saved.get("data") or {}) != config.data:
        raise ValueError(
            f"reference_run {str(folder)!r} used other data settings than this run; the "
            "reference must use the same data and seed"
        )


def config_yaml(config: ExperimentConfig) -> str:
    """A YAML rendering of a typed configuration (the run folder's ``config.yaml``)."""
    from omegaconf import OmegaConf

    mapping: dict[str, Any] = {
        "algorithm": {"name": config.algorithm.name, **config.algorithm.options},
        "backbone": {"name": config.backbone.name, **config.backbone.options},
        "data": _plain(dataclasses.asdict(config.data)),
        "optimizer": _plain(dataclasses.asdict(config.optimizer)),
        "trainer": _plain(dataclasses.asdict(config.trainer)),
        "seed": config.seed,
        "head": config.head,
        "reference_run": config.reference_run,
    }
    return OmegaConf.to_yaml(OmegaConf.create(mapping))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _load_config(path: Path) -> dict | None:
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # a config.yaml that is not YAML (a repr) is not checked
        return None
    return loaded if isinstance(loaded, dict) else None
