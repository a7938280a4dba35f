"""The note after a run that predicted tasks from raw scores."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import ClassIncrementalHeads, DomainIncrementalHead, TaskIncrementalHeads
from hatcl.inference.advice import MEASURED, note_task_prediction
from hatcl.inference.config import CilConfig


def _printed(heads_class, *, per_task_network: bool, calibration: str) -> str:
    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(3,))
    heads = heads_class(input_dim=3, per_task_network=per_task_network)
    out = io.StringIO()
    console = Console(file=out, width=400)
    cil = CilConfig(task_score="energy", calibration=calibration)
    note_task_prediction(console, model=ContinualModel(backbone=backbone, heads=heads), cil=cil)
    return out.getvalue()


@pytest.mark.parametrize("heads_class", [ClassIncrementalHeads, DomainIncrementalHead])
def test_a_per_task_network_with_raw_scores_is_told_the_measured_calibrated_numbers(heads_class):
    text = _printed(heads_class, per_task_network=True, calibration="none")
    assert "raw energy scores" in text and "cil.calibration=affine" in text
    assert MEASURED["raw"] in text and MEASURED["calibrated"] in text


@pytest.mark.parametrize(
    ("heads_class", "per_task_network", "calibration"),
    [
        (ClassIncrementalHeads, True, "affine"),  # calibrated already
        (ClassIncrementalHeads, False, "none"),  # a shared network predicts no task
        (TaskIncrementalHeads, True, "none"),  # the task id is given
    ],
)
def test_no_note_otherwise(heads_class, per_task_network, calibration):
    assert _printed(heads_class, per_task_network=per_task_network, calibration=calibration) == ""
