"""Batches go through pinned host memory only for a CUDA device; a CPU run is untouched."""

import warnings

import lightning as L
import pytest
import torch

import hatcl.training.task_loop as task_loop
from hatcl.cli_run import compose_config, run_from_config
from hatcl.training.batches import TensorBatches, pin_batches, pins_host_memory


@pytest.mark.parametrize(
    ("device", "pinned"),
    [
        (torch.device("cuda", 0), True),
        (torch.device("cuda"), True),
        (torch.device("cpu"), False),
        (torch.device("meta"), False),
    ],
)
def test_the_device_decides_pinning(device, pinned):
    assert pins_host_memory(device) is pinned


def test_pinned_batches_copy_every_tensor_through_pin_memory(monkeypatch):
    calls = []

    def fake_pin(self):
        calls.append(self.shape)
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
    batches = TensorBatches(x, y, batch_size=2, task_ids=torch.zeros(5, dtype=torch.long))
    pin_batches(torch.device("cuda", 0), [batches, None])
    got = list(batches)
    assert batches.pin_memory is True
    assert calls == [(2, 2), (2,), (2,), (2, 2), (2,), (2,), (1, 2), (1,), (1,)]
    assert torch.equal(torch.cat([b[0] for b in got]), x)  # same values, same order
    pin_batches(torch.device("cpu"), [batches])
    calls.clear()
    assert len(list(batches)) == 3 and calls == []


def test_a_cpu_run_never_pins_its_batches(tmp_path, monkeypatch):
    seen: list[tuple[str, bool]] = []

    class Watch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(("train", any(t.is_pinned() for t in batch)))

        def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            seen.append(("test", any(t.is_pinned() for t in batch)))

    make_trainer = task_loop.make_trainer

    def watched(*args, callbacks=(), **kwargs):
        return make_trainer(*args, callbacks=[*callbacks, Watch()], **kwargs)

    monkeypatch.setattr(task_loop, "make_trainer", watched)
    cfg = compose_config(
        [
            "algorithm=hat",
            "data.num_tasks=2",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "trainer.loggers=[]",
            "trainer.figures=false",
            "trainer.checkpoints=false",
            "trainer.num_threads=1",
            "backbone.hidden_dims=[16]",
            f"output_dir={tmp_path}",
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_from_config(cfg)
    assert {kind for kind, _ in seen} == {"train", "test"}
    assert not any(pinned for _, pinned in seen)
