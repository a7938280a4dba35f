"""A run's plan: everything checked and loaded before the run starts, consumed by the runner.

The command's preflight (:func:`hatcl.preflight.preflight`) makes the plan from the composed
configuration, checking all of it and creating nothing; :func:`plan_run` makes one from a typed
configuration (the Python path, :func:`hatcl.training.runner.run_experiment`). Either way the
runner (:func:`hatcl.training.runner.run_plan`) checks and loads nothing again: the resume
folder's checkpoints, the external FWT reference and the resolved configuration come from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatcl.training.resume_state import ResumeState, open_resume


@dataclass(frozen=True)
class RunPlan:
    """A checked run.

    Attributes:
        config: the typed configuration (:class:`hatcl.training.experiment.ExperimentConfig`).
        resolved: the resolved configuration as YAML (saved as ``config.yaml``).
        run_dir: the run folder (``resume`` or ``output_dir``).
        resumed: the interrupted run continued, its checkpoints loaded (``None``: a new run).
        reference: the FWT reference ``b[tau]`` read from ``reference_run=<folder>`` (``None``:
            none, or ``auto``: trained by the run).
        warnings: what the user should know before the run starts (e.g. a damaged checkpoint
            that will not be used).
    """

    config: Any
    resolved: str
    run_dir: Path
    resumed: ResumeState | None = None
    reference: tuple[float, ...] | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def resume(self) -> bool:
        """Whether the run continues the unfinished run in ``run_dir``."""
        return self.resumed is not None


def plan_run(config: Any, *, run_dir: str | Path, resolved: str, resume: bool = False) -> RunPlan:
    """The plan of ``config`` in ``run_dir`` (its options were checked when it was built).

    Args:
        config: the typed configuration.
        run_dir: the run folder.
        resolved: its YAML text (``config.yaml``; a resumed folder's must equal it).
        resume: continue the unfinished run in ``run_dir`` (its checkpoints' identity is
            checked when they are restored: no model exists yet).

    Raises:
        FileNotFoundError, ValueError: a resume folder that is not an unfinished run of
            ``resolved``; a ``reference_run`` folder that is not a finished reference.
    """
    from hatcl.training.reference import AUTO, external_reference

    resumed = open_resume(run_dir, config_text=resolved) if resume else None
    reference = None
    if config.reference_run not in (None, AUTO):
        reference = tuple(external_reference(config))
    return RunPlan(
        config=config,
        resolved=resolved,
        run_dir=Path(resumed.folder if resumed is not None else run_dir),
        resumed=resumed,
        reference=reference,
    )
