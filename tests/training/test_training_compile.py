"""``trainer.compile=true``: the compiled backbone trains like the eager one, on every algorithm.

The tests compile with the ``aot_eager`` backend (dynamo's graph capture and autograd tracing,
no C++ build, so seconds instead of minutes); one slow test uses the real default backend.
"""

import pytest
import torch
from torch.testing import assert_close

from hatcl.algorithms.registries import ALGORITHMS
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.data.base import TaskData, TensorSplit
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training import compile as compile_module
from hatcl.training.compile import CompileError, compile_backbone
from hatcl.training.optim import build_optimizer
from hatcl.training.step import run_training_step

HAT_FAMILY = ["hat", "adahat", "fgadahat"]


def _train(name: str, *, compiled: bool, steps: int = 3):
    torch.manual_seed(0)
    algorithm = ALGORITHMS.get(name)()
    backbone = MLPBackbone(input_shape=(1, 8, 8), hidden_dims=(16, 12), masked=algorithm.uses_masks)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=12))
    algorithm.configure_model(model=model)
    if compiled:
        compile_backbone(model)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(steps * 8, 1, 8, 8, generator=generator)
    y = torch.randint(0, 3, (steps * 8,), generator=generator)
    for task_id in (1, 2):
        model.setup_task(task_id=task_id, num_classes=3)
        algorithm.on_task_start(task_id=task_id, model=model)
        optimizer = build_optimizer(
            algorithm.trainable_parameters(model), name="adam", lr=1e-2, weight_decay=0.0,
            options={},
        )  # fmt: skip
        model.train()
        for b in range(steps):
            run_training_step(
                model=model, algorithm=algorithm, optimizer=optimizer,
                inputs=x[b * 8 : (b + 1) * 8], targets=y[b * 8 : (b + 1) * 8],
                task_id=task_id, batch_index=b, num_batches=steps,
            )  # fmt: skip
        split = TensorSplit(x=x, y=y)
        data = TaskData(
            task_id=task_id, train=split, val=split, test=split, num_classes=3,
            class_labels=(0, 1, 2),
        )  # fmt: skip
        algorithm.on_task_end(task_id=task_id, model=model, task_data=data)
    model.eval()
    with torch.no_grad():
        logits = [model(x, task_id=t, stage=Stage.TEST).logits for t in (1, 2)]
    return model, logits


@pytest.fixture
def aot_eager(monkeypatch):
    monkeypatch.setattr(compile_module, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.slow  # about 10 s per algorithm (graph capture of two tasks)
@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_compiled_equals_eager(name, aot_eager):
    eager, eager_logits = _train(name, compiled=False)
    compiled, compiled_logits = _train(name, compiled=True)
    assert compiled.backbone._compiled_call_impl is not None
    for (key, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        if "masks_" in key or "cumulative_" in key or "summative_" in key:
            assert torch.equal(a, b), key  # identical binary masks
        else:
            assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)
    for a, b in zip(eager_logits, compiled_logits):
        assert_close(a, b, rtol=1e-4, atol=1e-5)


class _Untraceable(torch.nn.Module):
    def forward(self, x, **kwargs):
        torch._dynamo.graph_break()
        raise torch._dynamo.exc.Unsupported("a data-dependent branch the compiler refuses")


def test_a_network_that_cannot_be_compiled_says_what_to_do(aot_eager):
    model = torch.nn.Module()
    model.backbone = _Untraceable()
    compile_backbone(model)
    with pytest.raises(CompileError, match="trainer.compile=false"):
        model.backbone(torch.ones(2), stage=Stage.TRAIN)


def test_compile_needs_a_backbone():
    with pytest.raises(TypeError, match="backbone"):
        compile_backbone(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_inductor_compiled_hat_equals_eager():
    torch._dynamo.reset()
    eager, eager_logits = _train("hat", compiled=False, steps=2)
    compiled, compiled_logits = _train("hat", compiled=True, steps=2)
    for a, b in zip(eager_logits, compiled_logits):
        assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
