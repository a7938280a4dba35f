"""The passes every shared attribution is built from: the problem, tapped forwards, chunking.

:class:`AttributionProblem` names the logits-only model and its activation taps; :func:`run_taps`
forwards a batch and returns the logits and every tap's output (optionally replacing one tap's
output); the small helpers below reproduce Captum's gradient, interpolation and summing steps;
:func:`chunked` splits a batch into chunks of samples (:mod:`~hatcl.importance.attribution.shared`
holds the attribution methods themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hatcl.importance.attribution.bound import BoundLogits

Attributions = dict[str, Tensor]


@dataclass(frozen=True)
class AttributionProblem:
    """The model attributions run on.

    Attributes:
        bound: logits-only module (task id, stage and scale bound by keyword).
        taps: the activation tap of every mask key, in forward order.
        sequential: whether the layers after a tap depend on the input only through it.
    """

    bound: BoundLogits
    taps: Mapping[str, nn.Module]
    sequential: bool


def run_taps(
    problem: AttributionProblem,
    x: Tensor,
    *,
    edit_key: str | None = None,
    edit: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Attributions]:
    """Forward ``x``; return the logits and every tap's output (``edit`` replaces one tap's).

    Unless edited, the tap's output itself flows on (as in a Captum call for another layer).
    """
    outputs: Attributions = {}

    def hook_for(key: str):
        def hook(module: nn.Module, inputs, output: Tensor) -> Tensor:
            if key == edit_key:
                outputs[key] = edit(output)
                return outputs[key]
            outputs[key] = output
            return None

        return hook

    handles = [tap.register_forward_hook(hook_for(key)) for key, tap in problem.taps.items()]
    try:
        logits = problem.bound(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, outputs


def target_logits(logits: Tensor, targets: Tensor) -> Tensor:
    """The logit of each row's target class."""
    return logits.gather(1, targets.reshape(-1, 1)).squeeze(1)


def tap_gradients(total: Tensor, tensors: Attributions) -> Attributions:
    """The gradient of the scalar ``total`` with respect to every tensor, by key (one backward)."""
    keys = list(tensors)
    grads = torch.autograd.grad(total, [tensors[key] for key in keys])
    return dict(zip(keys, grads))


def reshape_and_sum(x: Tensor, steps: int, examples: int, shape: tuple[int, ...]) -> Tensor:
    """Captum's sum over the steps of step-major rows: ``(steps * examples, *shape)`` in."""
    return torch.sum(x.reshape((steps, examples, *shape)), dim=0)


def interpolate(x: Tensor, alphas: list[float]) -> Tensor:
    """Captum's input path from the zero baseline, step-major: ``0 + a * (x - 0)``."""
    return torch.cat([0 + alpha * (x - 0) for alpha in alphas], dim=0)


def repeat_rows(x: Tensor, times: int) -> Tensor:
    """``x`` tiled ``times`` times along the rows (the whole batch, then again)."""
    return x.repeat(times, *([1] * (x.dim() - 1)))


def layer_inputs(problem: AttributionProblem, x: Tensor, expanded_rows: int) -> Tensor:
    """The input of a pass that edits one tap: the chunk itself when the taps are sequential."""
    if problem.sequential:
        return x
    return repeat_rows(x, expanded_rows // x.shape[0])


def chunked(
    method: Callable[..., Attributions],
    problem: AttributionProblem,
    x: Tensor,
    targets: Tensor,
    *,
    rows_per_sample: int,
    internal_batch_size: int,
    per_sample: Mapping[str, Tensor] | None = None,
    **options,
) -> Iterator[tuple[int, Attributions]]:
    """Run ``method`` on chunks of samples; yield (number of samples, attributions) per chunk.

    A chunk has at most ``max(1, internal_batch_size // rows_per_sample)`` samples;
    ``per_sample`` tensors (e.g. random draws, one row per sample) are sliced with it.
    """
    if internal_batch_size < 1:
        raise ValueError(f"internal_batch_size must be a positive int, got {internal_batch_size}")
    size = max(1, internal_batch_size // max(1, rows_per_sample))
    for first in range(0, x.shape[0], size):
        part = slice(first, first + size)
        sliced = {name: value[part] for name, value in (per_sample or {}).items()}
        yield x[part].shape[0], method(problem, x[part], targets[part], **sliced, **options)
