"""``hatcl run`` with the conv backbones: presets compose and a tiny run completes."""

from __future__ import annotations

import json

import pytest

from hatcl.cli_run import compose_config, run_from_config


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["backbone=cnn"], {"name": "cnn", "channels": [64, 128, 256], "fc_dims": [2048, 2048]}),
        (["backbone=resnet18"], {"name": "resnet18", "width": 64, "small_input": True}),
    ],
)
def test_presets_compose(overrides, expected):
    backbone = compose_config(overrides).backbone
    assert {key: backbone[key] for key in expected} == expected


def test_tiny_hat_run_on_split_digits_with_both_backbones(tmp_path):
    tiny = {
        "cnn": ["backbone.channels=[4,8,8]", "backbone.fc_dims=[16,16]"],
        "resnet18": ["backbone.width=4", "backbone.num_blocks=[1,1,1,1]"],
    }
    for name, options in tiny.items():
        cfg = compose_config(
            [
                f"backbone={name}",
                *options,
                "data=split_digits",
                "data.num_tasks=2",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
                f"output_dir={tmp_path / name}",
            ]
        )
        run_from_config(cfg, run_dir=tmp_path / name)
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        matrix = metrics["accuracy_matrix"]
        assert len(matrix) == 2 and len(matrix[1]) == 2
        assert matrix[1][0] == matrix[0][0]  # HAT: task 1 unchanged by task 2
        assert 0.0 < metrics["final_capacity"] < 1.0
