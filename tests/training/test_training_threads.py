"""Fast first runs: thread policy, 1-based epochs in the progress bar, the short-run note."""

from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

from hatcl.backbones.mlp import MLPBackbone
from hatcl.training.progress import EpochProgressBar
from hatcl.training.threads import (
    SMALL_MODEL_PARAMETERS,
    apply_threads,
    choose_threads,
    note_short_run,
)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_small_models_train_with_one_thread():
    model = MLPBackbone(input_shape=(1, 8, 8), hidden_dims=(256, 100, 64))  # the default run's
    assert sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS
    assert choose_threads(None, model=model) == 1


def test_large_models_keep_torch_default_and_configuration_wins():
    big = torch.nn.Linear(20000, 1001)  # 20,021,001 parameters
    assert choose_threads(None, model=big) is None
    assert choose_threads(3, model=big) == 3
    assert choose_threads(2, model=torch.nn.Linear(2, 2)) == 2


def test_apply_threads_sets_torch(restore_threads):
    torch.set_num_threads(2)
    assert apply_threads(None, model=torch.nn.Linear(2, 2)) == 1
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert apply_threads(None, model=torch.nn.Linear(20000, 1001)) == 2  # left as it was


@pytest.mark.parametrize(
    ("epoch", "max_epochs", "text"), [(0, 1, "Epoch 1/1"), (4, 10, "Epoch 5/10")]
)
def test_progress_bar_counts_epochs_from_one(epoch, max_epochs, text):
    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs)
    assert bar._get_train_description(epoch).strip() == text


def test_short_masking_runs_end_with_a_note():
    console = Console(record=True, width=400)
    note_short_run(console, uses_masks=True, epochs=1)
    note_short_run(console, uses_masks=False, epochs=1)  # fine-tuning: nothing to settle
    note_short_run(console, uses_masks=True, epochs=10)
    text = console.export_text()
    assert text.count("note:") == 1
    assert "1 epoch(s) per task is a smoke test" in text
    assert "trainer.max_epochs=10" in text


def test_progress_bar_shows_the_latest_recorded_values(tmp_path):
    """The bar's loss, accuracy and validation accuracy are the run's last recorded values."""
    import csv
    import os
    import subprocess
    import sys

    run = tmp_path / "run"
    args = ["data.num_tasks=1", "trainer.max_epochs=2", "trainer.loggers=[]"]
    done = subprocess.run(
        [sys.executable, "-m", "hatcl.cli", "run", *args, "trainer.figures=false",
         "trainer.enable_progress_bar=true", f"output_dir={run}"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, done.stderr
    bar = next(line for line in done.stdout.splitlines() if line.startswith("Epoch 2/2"))
    rows = list(csv.DictReader((run / "training_curves.csv").open()))
    loss = next(r["train_loss"] for r in reversed(rows) if r["train_loss"])
    val = next(r["val_accuracy"] for r in reversed(rows) if r["val_accuracy"])
    assert f"train_loss: {float(loss):.3f}" in bar
    assert f"val_acc: {float(val):.3f}" in bar
