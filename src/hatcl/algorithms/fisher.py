"""The empirical diagonal Fisher of a task: per-sample squared gradients, summed over samples.

Two exact ways to the same numbers:

- parameters of ``nn.Linear`` layers, each applied once per sample to a ``(batch, features)``
  input (the MLP, the CNN's fully connected layers, the heads), need no per-sample gradients:
  sample ``n``'s weight gradient is the outer product ``g_n a_n^T``, so the sum of its squares
  is ``(g**2)^T (a**2)`` (one matrix product per layer, from one batched backward pass);
- every other parameter (convolutions, batch norm; all of them if a linear layer is used twice
  or on a higher-dimensional input) gets per-sample gradients vectorised with ``torch.func.vmap``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from hatcl.backbones.model import ContinualModel
from hatcl.functional.ewc import linear_squared_gradient_sums, squared_gradient_sum
from hatcl.masking.stage import Stage


class _NotPerSampleLinear(Exception):
    """A linear layer was used in a way the outer-product shortcut does not cover."""


def diagonal_fisher(
    model: ContinualModel,
    *,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    task_id: int,
    batch_size: int = 128,
) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher: mean over samples of squared per-sample log-likelihood gradients.

    The model runs in evaluation mode (no dropout, batch-norm running statistics), one sample at a
    time in effect, through task ``task_id``'s head. Keys are the trainable parameters' names.
    """
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    linear = _linear_parameter_names(model) & set(trainable)
    was_training = model.training
    model.eval()
    try:
        try:
            sums = _linear_fisher_sums(model, inputs, targets, task_id, batch_size, names=linear)
        except _NotPerSampleLinear:
            sums = {}
        rest = [name for name in trainable if name not in sums]
        if rest:
            sums.update(_vmap_fisher_sums(model, inputs, targets, task_id, batch_size, names=rest))
    finally:
        model.train(was_training)
    return {name: sums[name] / max(len(targets), 1) for name in trainable}


def _linear_parameter_names(model: nn.Module) -> set[str]:
    return {
        f"{module_name}.{name}" if module_name else name
        for module_name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        for name, _ in module.named_parameters(recurse=False)
    }


def _batches(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, like: torch.Tensor
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches on ``like``'s device; floating inputs in its dtype (the task data is CPU data)."""
    dtype = like.dtype if inputs.is_floating_point() else inputs.dtype
    for start in range(0, len(targets), batch_size):
        yield (
            inputs[start : start + batch_size].to(device=like.device, dtype=dtype),
            targets[start : start + batch_size].to(like.device),
        )


def _linear_fisher_sums(
    model: ContinualModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    task_id: int,
    batch_size: int,
    *,
    names: set[str],
) -> dict[str, torch.Tensor]:
    if not names:
        return {}
    parameters = dict(model.named_parameters())
    sums = {n: torch.zeros_like(parameters[n]) for n in names}
    like = parameters[next(iter(names))]
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    for x, y in _batches(inputs, targets, batch_size, like):
        with _capture_linear_io(linears) as captured:
            out = model(x, task_id=task_id, stage=Stage.TEST)
        used = {name: io for name, io in captured.items() if io[1].requires_grad}
        if any(output._version != version for _, output, version in used.values()):
            raise _NotPerSampleLinear("a linear layer's output was modified in place")
        # summed, so each sample's output gradient is that of its own loss
        loss = F.cross_entropy(out.logits, y, reduction="sum")
        gradients = torch.autograd.grad(loss, [output for _, output, _ in used.values()])
        for (name, (layer_input, _, _)), output_gradient in zip(used.items(), gradients):
            weight_sum, bias_sum = linear_squared_gradient_sums(
                layer_input, output_gradient=output_gradient
            )
            _add_if_wanted(sums, f"{name}.weight", weight_sum)
            _add_if_wanted(sums, f"{name}.bias", bias_sum)
    return sums


def _add_if_wanted(sums: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    if key in sums:
        sums[key] += value


@contextmanager
def _capture_linear_io(
    linears: dict[str, nn.Linear],
) -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor, int]]]:
    """Per linear layer used in the forward pass: its (detached) input, its output and the
    output's version (an in-place change afterwards would make its gradient another one's)."""
    captured: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def forward_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if name in captured or args[0].dim() != 2:
                raise _NotPerSampleLinear(name)
            captured[name] = (args[0].detach(), output, output._version)

        return hook

    handles = [m.register_forward_hook(forward_hook(n)) for n, m in linears.items()]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _vmap_fisher_sums(
    model: ContinualModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    task_id: int,
    batch_size: int,
    *,
    names: list[str],
) -> dict[str, torch.Tensor]:
    """Per-sample gradients of the parameters ``names``; every other parameter enters as a
    detached constant, so nothing returned carries an autograd graph into the model."""
    detached = {n: p.detach() for n, p in model.named_parameters()}
    named = {n: detached[n] for n in names}
    constants = {n: p for n, p in detached.items() if n not in named}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    like = next(iter(named.values()))

    def sample_loss(params, x, y):
        out = functional_call(
            model,
            (params, constants, buffers),
            (x.unsqueeze(0),),
            {"task_id": task_id, "stage": Stage.TEST},
        )
        return F.cross_entropy(out.logits, y.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    sums = {n: torch.zeros_like(p) for n, p in named.items()}
    for x, y in _batches(inputs, targets, batch_size, like):
        for name, gradients in per_sample(named, x, y).items():
            sums[name] += squared_gradient_sum(gradients)
    return sums
