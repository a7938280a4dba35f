"""Transformers wrapped with ``unmasked="per_task"`` keep earlier tasks under the HAT family.

Through the public API (``hatcl.wrap`` + ``hatcl.Learner``), on a hand-written ViT (conv patch
embedding, class token, positional embedding, fused qkv, LayerNorm, GELU MLP) and on a network
of ``nn.TransformerEncoderLayer``: under HAT, task 1's test logits after training task 2 are
bit-identical to those after task 1; under AdaHAT and FG-AdaHAT task 1's own copies (norms,
class token, positional embedding) are untouched by task 2.
"""

from __future__ import annotations

import pytest
import torch
from transformer_nets import EncoderNet, TinyViT
from wrap_helpers import train_task

import hatcl
from hatcl.algorithms.adahat import AdaHAT
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.algorithms.hat import HAT
from hatcl.wrap.unmasked import PerTaskCopy

NETS = {
    "vit": lambda: TinyViT(),
    "encoder_pre_norm": lambda: EncoderNet(norm_first=True),
    "encoder_post_norm": lambda: EncoderNet(norm_first=False),
}


def _train_two_tasks(net, algorithm, **wrap_options):
    """Two 2-class tasks on random 8x8 images; returns the backbone and task 1's test logits
    after each task, plus task 1's per-task copies after each task."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    test = torch.randn(12, 1, 8, 8, generator=generator)
    backbone = hatcl.wrap(net, test[:2], **{"unmasked": "per_task", **wrap_options})
    learner = hatcl.Learner(backbone=backbone, algorithm=algorithm)
    logits, copies = [], []
    for task_id in (1, 2):
        x = torch.randn(48, 1, 8, 8, generator=generator)
        y = (x[:, 0, task_id, :].mean(1) > 0).long()
        learner.start_task(task_id, num_classes=2, num_batches=3)
        train_task(learner, x, y, epochs=2, lr=0.01)
        with torch.no_grad():
            logits.append(learner.predict(test, task_id=1))
        copies.append(
            {
                name: value.detach().clone()
                for name, value in backbone.named_parameters()
                if ".copies.1." in name
            }
        )
    return backbone, logits, copies


@pytest.mark.parametrize("name", list(NETS))
def test_hat_keeps_task_1_logits_bit_identical(name):
    backbone, (after_1, after_2), _ = _train_two_tasks(NETS[name](), HAT())
    assert torch.equal(after_1, after_2)
    assert any(isinstance(m, PerTaskCopy) for m in backbone.modules())


def test_without_per_task_copies_the_layer_norms_would_forget():
    """The oracle is not vacuous: norms, class token and positional embedding trained by every
    task (excluded from protection) change task 1's logits."""
    net = NETS["vit"]()
    norms = [n for n, m in net.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    _, (after_1, after_2), _ = _train_two_tasks(
        net, HAT(), exclude=[*norms, "cls_token", "pos"], unmasked="refuse"
    )
    assert not torch.equal(after_1, after_2)


@pytest.mark.parametrize(
    "algorithm",
    [AdaHAT(), FGAdaHAT(importance_type="gradient_x_activation_abs")],
    ids=["adahat", "fgadahat"],
)
def test_adahat_family_leaves_task_1_copies_untouched(algorithm):
    _, _, (copies_1, copies_2) = _train_two_tasks(NETS["vit"](), algorithm)
    assert copies_1 and copies_1.keys() == copies_2.keys()
    assert all(torch.equal(copies_1[name], copies_2[name]) for name in copies_1)


def test_the_residual_stream_shares_one_mask():
    backbone = hatcl.wrap(TinyViT(), torch.randn(2, 1, 8, 8), unmasked="per_task")
    writers = {w.name.removeprefix("network."): w.mask_key for w in backbone.weighted_layers}
    stream = {writers[name] for name in writers if name.endswith(("proj", "fc2", "embed"))}
    assert stream == {"embed"}
    readers = [w for w in backbone.weighted_layers if w.name.endswith(("fc1", "_q", "_k", "_v"))]
    assert readers and all(w.input_mask_key == "embed" for w in readers)
    assert len({w.mask_key for w in readers}) == len(readers)  # q, k, v, fc1: their own masks
