"""The data of a run: a built-in source and scenario, or a task sequence of the user's own."""

from __future__ import annotations

from hatcl.data.base import ContinualData, DataConfig, build_continual_data
from hatcl.data.sources.custom import CustomDataConfig, build_custom_data


def build_run_data(config: DataConfig, *, seed: int) -> ContinualData:
    """The task sequence of ``config``: ``data=custom`` calls the user's target, else built-in."""
    if isinstance(config, CustomDataConfig):
        return build_custom_data(config, seed=seed)
    return build_continual_data(config, seed=seed)
