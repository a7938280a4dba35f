"""A Hydra callback writing ``<sweep dir>/report.html`` when a multirun ends (``trainer.report``).

Registered in ``conf/config.yaml`` under ``hydra.callbacks``; Hydra instantiates it for
``hatcl run -m``. The jobs' folders are noted as they end (a job whose ``output_dir`` lies
outside the sweep folder is reported too); with a launcher running jobs in other processes,
the runs found below the sweep folder are reported.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from hatcl.cli_sweep import job_folder


class SweepReport(Callback):
    """Collect the sweep's run folders; write their report at the end of the multirun."""

    def __init__(self) -> None:
        self.folders: list[Path] = []

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        """Note the folder of the job that ended (where its run was written): its own
        ``output_dir`` when the command set one, else Hydra's job folder."""
        from hydra.core.hydra_config import HydraConfig

        folder = job_folder(config, HydraConfig.get())
        if folder not in self.folders:
            self.folders.append(folder)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Write ``report.html`` into the sweep folder, unless ``trainer.report=false``."""
        from omegaconf import OmegaConf

        if not OmegaConf.select(config, "trainer.report", default=True):
            return
        sweep = Path(OmegaConf.select(config, "hydra.sweep.dir"))
        paths = sweep_run_paths(sweep, self.folders)
        if not paths:
            return
        from hatcl.reporting.report import write_sweep_report

        try:
            written = write_sweep_report(paths, out=sweep / "report.html", title=sweep.name)
        except (ValueError, FileNotFoundError, OSError) as error:  # the runs stay as they are
            print(f"hatcl: the sweep report was not written: {error}", file=sys.stderr)
            return
        print(f"sweep report: {written}", flush=True)


def sweep_run_paths(sweep: Path, folders: list[Path]) -> list[Path]:
    """The sweep folder (if it holds finished runs) and the finished job folders outside it."""
    inside = sweep.is_dir() and any(sweep.rglob("metrics.json"))
    outside = [
        folder
        for folder in folders
        if (folder / "metrics.json").is_file()
        and not folder.absolute().is_relative_to(sweep.absolute())
    ]
    return ([sweep] if inside else []) + outside
