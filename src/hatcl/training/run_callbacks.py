"""Callbacks of a whole run (not of one Lightning fit): observers that tests and tools pass in.

The runner calls them at fixed points; none of them changes the run. Examples: a state digest
written by every process (to check that distributed ranks agree), or a test's fault injector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from hatcl.reporting.run_folder import write_json


class RunCallback:
    """Hooks of a run; every hook is a no-op by default."""

    def on_step(self, *, task_id: int, step: int) -> None:
        """Step ``step`` (0-based, counted over the task's epochs) of ``task_id`` starts."""

    def on_task_saved(self, *, task_id: int, run_dir: Path) -> None:
        """Task ``task_id`` is finished, tested and (if enabled) checkpointed."""

    def on_run_end(self, *, module: torch.nn.Module, metrics: dict, rank: int) -> None:
        """The run is finished; ``module`` is the trained :class:`ContinualModule`."""


class StateDigest(RunCallback):
    """Every process writes ``rank_<r>.json`` into ``folder``: metrics and hashes of its state.

    Args:
        folder: where the digests go (created).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def on_run_end(self, *, module: torch.nn.Module, metrics: dict, rank: int) -> None:
        masker = getattr(module.model.backbone, "masker", None)
        digest = {
            "rank": rank,
            "metrics": metrics,
            "model_sha256": state_hash(module.model),
            "algorithm_sha256": state_hash(module.algorithm),
            "masks_sha256": None if masker is None else state_hash(masker.store),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / f"rank_{rank}.json", digest)


def state_hash(module: torch.nn.Module) -> str:
    """SHA-256 of a module's ``state_dict`` (names and bytes, in name order)."""
    sha = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        sha.update(key.encode())
        sha.update(value.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()
