"""Per-channel masks: test-stage zeros and HAT's zero gradient for protected channels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.hat import HAT
from hatcl.masking.stage import Stage


def _store_task_one(backbone, overrides: dict[str, torch.Tensor]) -> None:
    ones = {key: torch.ones(units) for key, units in backbone.unit_counts().items()}
    backbone.masker.store.store(task_id=1, masks={**ones, **overrides})


def _one_hat_step(kit, model, algorithm, *, task_id: int) -> dict[int, torch.Tensor]:
    """One batch of ``task_id``: forward, loss, backward, HAT's gradient adjustment.

    Returns the raw gradients (before the adjustment) keyed by ``id(parameter)``.
    """
    model.setup_task(task_id=task_id, num_classes=2)
    algorithm.on_task_start(task_id=task_id, model=model)
    kind = "cnn" if hasattr(model.backbone, "convs") else "resnet18"
    x, y = kit.task_batches(kind, seed=5, batches=1, batch_size=8)[0]
    model.train()
    output = model(x, task_id=task_id, stage=Stage.TRAIN, scale=1.0)
    context = StepContext(
        model=model,
        task_id=task_id,
        batch_index=0,
        num_batches=1,
        scale=1.0,
        inputs=x,
        targets=y,
        output=output,
    )
    loss = F.cross_entropy(output.logits, y)
    for term in algorithm.loss_terms(context).values():
        loss = loss + term
    loss.backward()
    raw = {id(p): p.grad.clone() for p in model.parameters() if p.grad is not None}
    algorithm.adjust_gradients(context)
    return raw


def _check_blocked(parameter, raw: dict[int, torch.Tensor], channel: int, dim: int = 0) -> None:
    """Slice ``channel`` of ``dim`` is zeroed by the adjustment; the rest keeps its raw value."""
    _check_slices(raw[id(parameter)].movedim(dim, 0), parameter.grad.movedim(dim, 0), channel)


def _check_slices(before: torch.Tensor, after: torch.Tensor, channel: int) -> None:
    assert (before[channel] != 0).any()  # the step did want to change it
    assert (after[channel] == 0).all()
    keep = [i for i in range(after.shape[0]) if i != channel]
    assert torch.equal(after[keep], before[keep])
    assert (before[keep] != 0).any()


@pytest.mark.parametrize("batch_norm", ["none", "independent"])
def test_resnet_protected_channel_gets_zero_gradient_in_both_convs_and_the_shortcut(
    kit, batch_norm
):
    # Task 1 used every unit except the channels of layer2_0_out other than ``channel``.
    model = kit.tiny_model("resnet18", batch_norm=batch_norm)
    backbone, channel = model.backbone, 3
    key = "layer2_0_out"  # written by blocks.2.conv2 and blocks.2.shortcut
    only = torch.zeros(16)
    only[channel] = 1.0
    _store_task_one(backbone, {key: only})
    raw = _one_hat_step(kit, model, HAT(), task_id=2)
    block, following = backbone.blocks[2], backbone.blocks[3]
    for module in (block.conv2, block.shortcut):
        _check_blocked(module.weight, raw, channel)
        if batch_norm == "none":
            _check_blocked(module.bias, raw, channel)
    # The next block reads the channel: its input column is protected (both ends used); the
    # other columns (inputs no earlier task used) keep their gradient.
    _check_blocked(following.conv1.weight, raw, channel, dim=1)
    # conv1 of the block: all its units and inputs are used, so it is frozen entirely.
    assert (raw[id(block.conv1.weight)] != 0).any()
    assert (block.conv1.weight.grad == 0).all()


def test_cnn_protected_channel_gets_zero_gradient_and_its_flattened_columns_too(kit):
    model = kit.tiny_model("cnn")
    backbone, channel = model.backbone, 2
    only = torch.zeros(6)
    only[channel] = 1.0
    _store_task_one(backbone, {"conv3": only})
    raw = _one_hat_step(kit, model, HAT(), task_id=2)
    _check_blocked(backbone.convs[2].weight, raw, channel)
    _check_blocked(backbone.convs[2].bias, raw, channel)
    # fc1 reads conv3 flattened channel-major: channel c is columns 4c .. 4c+3.
    assert backbone.flat_repeat == 4
    weight = backbone.linears[0].weight
    by_channel = (16, 6, 4)  # (fc1 units, conv3 channels, positions per channel)
    before, after = raw[id(weight)].reshape(by_channel), weight.grad.reshape(by_channel)
    _check_slices(before.movedim(1, 0), after.movedim(1, 0), channel)


@pytest.mark.parametrize(
    ("kind", "key", "residual"),
    [
        ("cnn", "conv2", None),
        ("resnet18", "stem", None),
        ("resnet18", "layer1_0_conv1", None),
        ("resnet18", "layer1_1_out", "layer1_0_out"),  # identity block: mask after the sum
        ("resnet18", "layer3_0_out", None),  # downsample block (conv2 + shortcut conv)
    ],
)
def test_test_stage_zero_mask_gives_zero_activation_for_that_channel(kit, kind, key, residual):
    backbone = kit.tiny_backbone(kind)
    backbone.eval()
    x = kit.task_batches(kind, seed=3, batches=1, batch_size=4)[0][0]
    _store_task_one(backbone, {})  # task 1: every unit on
    full = backbone(x, task_id=1, stage=Stage.TEST).activations
    # The most active channel of ``key`` (for an identity block: among those whose residual
    # input is active too, so the test shows the mask after the sum switching it off).
    strength = full[key].abs().sum(dim=(0, 2, 3))
    if residual is not None:
        strength = strength * (full[residual].abs().sum(dim=(0, 2, 3)) > 0)
    channel = int(strength.argmax())
    assert strength[channel] > 0
    mask = torch.ones(backbone.unit_counts()[key])
    mask[channel] = 0.0
    ones = {k: torch.ones(n) for k, n in backbone.unit_counts().items()}
    backbone.masker.store.store(task_id=2, masks={**ones, key: mask})
    output = backbone(x, task_id=2, stage=Stage.TEST)
    activation = output.activations[key]
    assert (activation[:, channel] == 0).all()
    keep = [c for c in range(len(mask)) if c != channel]
    assert torch.equal(activation[:, keep], full[key][:, keep])
    assert torch.equal(output.masks[key], mask)
