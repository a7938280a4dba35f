"""Exact attributions of every layer from shared passes, equal to Captum's per-layer results.

Every function takes an :class:`AttributionProblem` (the logits-only model and its activation
taps), a chunk of inputs and their targets, and returns ``{mask_key: attribution}`` with the
attribution of h_l per sample (shape of h_l). Each reproduces the corresponding Captum 0.9.0
layer method (same baselines, interpolation points, random draws and operation order) but
reads all layers from the same passes:

- gradient x activation, Grad-CAM: one forward and one backward for all layers;
- DeepLift, DeepLift SHAP: one forward of inputs and baselines with Captum's DeepLift rules on
  the nonlinear modules, one backward for all layers;
- conductance, internal influence, gradient SHAP: the input is interpolated, so one set of
  interpolated forwards and one backward serve all layers;
- LRP: one Captum ``LayerLRP`` call with the list of all taps (one propagation);
- integrated gradients and feature ablation perturb the layer's own output, so each layer needs
  its own passes; on a backbone with ``sequential_taps`` those passes run only the layers after
  the tap, on expanded rows (the layers before it run once on the chunk).

Samples are independent (attributions run in eval mode), so a batch is split into chunks of
samples by :func:`chunked`, keeping the rows of one pass under ``internal_batch_size``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from captum.attr import DeepLift, LayerLRP
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import Tensor, nn

from hatcl.importance.attribution.lrp_rules import lrp_rules
from hatcl.importance.attribution.passes import (
    AttributionProblem,
    Attributions,
    chunked,
    interpolate,
    layer_inputs,
    repeat_rows,
    reshape_and_sum,
    run_taps,
    tap_gradients,
    target_logits,
)

__all__ = [
    "APPROXIMATION",
    "CONDUCTANCE_STEPS",
    "DEEPLIFT_SHAP_REFERENCES",
    "GRADIENT_SHAP_SAMPLES",
    "INTEGRATED_GRADIENTS_STEPS",
    "INTERNAL_INFLUENCE_STEPS",
    "AttributionProblem",
    "Attributions",
    "chunked",
    "conductance",
    "deeplift",
    "deeplift_rules",
    "deepliftshap",
    "feature_ablation",
    "gradcam",
    "gradient_x_activation",
    "gradientshap",
    "integrated_gradients",
    "internal_influence",
    "lrp",
    "run_taps",
    "target_logits",
]

#: Captum's defaults, used unless docs/spec.md says otherwise (internal influence: 5 steps).
CONDUCTANCE_STEPS = 50
INTERNAL_INFLUENCE_STEPS = 5
INTEGRATED_GRADIENTS_STEPS = 50
GRADIENT_SHAP_SAMPLES = 5
DEEPLIFT_SHAP_REFERENCES = 10
APPROXIMATION = "gausslegendre"



# -- one backward for all layers ---------------------------------------------------------------


def gradient_x_activation(problem: AttributionProblem, x: Tensor, targets: Tensor) -> Attributions:
    """LayerGradientXActivation: dF/dh_l * h_l."""
    logits, taps = run_taps(problem, x)
    grads = tap_gradients(target_logits(logits, targets).sum(), taps)
    return {key: grads[key] * taps[key].detach() for key in taps}


def gradcam(problem: AttributionProblem, x: Tensor, targets: Tensor) -> Attributions:
    """LayerGradCam (attr_dim_summation=False): spatial mean of dF/dh_l times h_l."""
    logits, taps = run_taps(problem, x)
    grads = tap_gradients(target_logits(logits, targets).sum(), taps)
    result = {}
    for key, grad in grads.items():
        if grad.dim() > 2:
            grad = grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True)
        result[key] = grad * taps[key].detach()
    return result


# -- DeepLift ----------------------------------------------------------------------------------


@contextmanager
def deeplift_rules(model: nn.Module) -> Iterator[None]:
    """Captum's DeepLift multipliers on every supported nonlinear module, removed on exit."""
    deeplift = DeepLift(model)
    hooked = [module for module in model.modules() if deeplift._can_register_hook(module)]
    try:
        for module in hooked:
            deeplift._register_hooks(module)
        yield
    finally:
        deeplift._remove_hooks([])
        for module in hooked:
            for name in ("input", "output", "input_ref"):
                module.__dict__.pop(name, None)


def deeplift(
    problem: AttributionProblem, x: Tensor, targets: Tensor, *, baselines: Tensor | None = None
) -> Attributions:
    """LayerDeepLift (rescale rule, zero baseline unless given): (h_l - h_l(ref)) * multiplier.

    Captum's multiplier hooks of a module act on the gradient of the module's input tensor; a
    tap's output is also the input of the next module (e.g. a max pool), so each tap's
    multiplier is read by a gradient hook registered after the forward (it runs after the
    module's hooks; the gradient autograd returns for a tensor it also propagates through may be
    taken before them).
    """
    baselines = torch.zeros_like(x) if baselines is None else baselines
    rows = x.shape[0]
    grads: Attributions = {}
    with deeplift_rules(problem.bound):
        logits, taps = run_taps(problem, torch.cat([x, baselines]))
        for key, value in taps.items():
            value.register_hook(partial(grads.__setitem__, key))
        total = target_logits(logits, torch.cat([targets, targets])).sum()
        captured = torch.autograd.grad(total, list(taps.values()))
    for key, value in zip(taps, captured):
        grads.setdefault(key, value)
    return {key: (taps[key][:rows] - taps[key][rows:]).detach() * grads[key][:rows] for key in taps}


def deepliftshap(
    problem: AttributionProblem, x: Tensor, targets: Tensor, *, references: Tensor
) -> Attributions:
    """LayerDeepLiftShap: DeepLift against every reference, averaged over the references."""
    rows, count = x.shape[0], references.shape[0]
    expanded = x.repeat_interleave(count, dim=0)
    tiled = repeat_rows(references, rows)
    attributions = deeplift(
        problem, expanded, targets.repeat_interleave(count), baselines=tiled.to(x.dtype)
    )
    return {
        key: torch.mean(value.view(rows, count, *value.shape[1:]), dim=1)
        for key, value in attributions.items()
    }


# -- input interpolation shared by all layers --------------------------------------------------


def conductance(
    problem: AttributionProblem, x: Tensor, targets: Tensor, *, n_steps: int = CONDUCTANCE_STEPS
) -> Attributions:
    """LayerConductance: sum over the input path of dF/dh_l times the step of h_l."""
    _, alphas_of = approximation_parameters(APPROXIMATION)
    rows = x.shape[0]
    logits, taps = run_taps(problem, interpolate(x, alphas_of(n_steps + 1)))
    grads = tap_gradients(target_logits(logits, targets.repeat(n_steps + 1)).sum(), taps)
    result = {}
    for key, value in taps.items():
        value = value.detach()
        diff = value[rows:] - value[:-rows]
        result[key] = reshape_and_sum(
            diff * grads[key][:-rows], n_steps, rows, tuple(value.shape[1:])
        )
    return result


def internal_influence(
    problem: AttributionProblem,
    x: Tensor,
    targets: Tensor,
    *,
    n_steps: int = INTERNAL_INFLUENCE_STEPS,
) -> Attributions:
    """InternalInfluence: the path integral of dF/dh_l over the input path."""
    sizes_of, alphas_of = approximation_parameters(APPROXIMATION)
    step_sizes = torch.tensor(sizes_of(n_steps), dtype=x.dtype, device=x.device).view(n_steps, 1)
    logits, taps = run_taps(problem, interpolate(x, alphas_of(n_steps)))
    grads = tap_gradients(target_logits(logits, targets.repeat(n_steps)).sum(), taps)
    return {
        key: reshape_and_sum(
            grad.contiguous().view(n_steps, -1) * step_sizes,
            n_steps,
            x.shape[0],
            tuple(grad.shape[1:]),
        )
        for key, grad in grads.items()
    }


def gradientshap(
    problem: AttributionProblem, x: Tensor, targets: Tensor, *, alphas: Tensor
) -> Attributions:
    """LayerGradientShap, zero baselines: mean over draws of (h_l(x) - h_l(0)) * dF/dh_l(a x).

    Args:
        alphas: ``(rows, n_samples)`` random path coefficients in [0, 1], row by row the values
            Captum draws (sample-major).
    """
    rows, samples = alphas.shape
    expanded = x.repeat_interleave(samples, dim=0)
    coefficient = alphas.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    scaled = coefficient * expanded + (1.0 - coefficient) * torch.zeros_like(expanded)
    with torch.no_grad():
        _, ends = run_taps(problem, torch.cat([x, torch.zeros_like(x[:1])]))
    logits, taps = run_taps(problem, scaled)
    grads = tap_gradients(target_logits(logits, targets.repeat_interleave(samples)).sum(), taps)
    result = {}
    for key, grad in grads.items():
        delta = ends[key][:rows].repeat_interleave(samples, dim=0) - ends[key][rows:]
        summed = (delta * grad).view(rows, samples, *grad.shape[1:]).sum(dim=1)
        result[key] = summed * 1 / samples
    return result


def lrp(problem: AttributionProblem, x: Tensor, targets: Tensor) -> Attributions:
    """LayerLRP (Captum's rules plus hatcl's, :mod:`lrp_rules`): one propagation, all taps."""
    keys = list(problem.taps)
    rows = x.shape[0]
    if rows == 1:  # Captum reads a one-element target with .item() (a host sync): two equal rows
        x, targets = torch.cat([x, x]), torch.cat([targets, targets])
    with lrp_rules(problem.bound):
        relevances = LayerLRP(problem.bound, [problem.taps[key] for key in keys]).attribute(
            x.detach().requires_grad_(), target=targets
        )
    return {key: value.detach()[:rows] for key, value in zip(keys, relevances)}


# -- per-layer perturbations -------------------------------------------------------------------

def integrated_gradients(
    problem: AttributionProblem,
    x: Tensor,
    targets: Tensor,
    *,
    n_steps: int = INTEGRATED_GRADIENTS_STEPS,
) -> Attributions:
    """LayerIntegratedGradients: the path runs in h_l's own space, from h_l(0) to h_l(x).

    Each layer's path is different, so each layer has its own interpolated passes.
    """
    sizes_of, alphas_of = approximation_parameters(APPROXIMATION)
    step_sizes = torch.tensor(sizes_of(n_steps), dtype=x.dtype, device=x.device).view(n_steps, 1)
    alphas = alphas_of(n_steps)
    rows = x.shape[0]
    with torch.no_grad():
        _, ends = run_taps(problem, torch.cat([x, torch.zeros_like(x)]))
    result = {}
    for key, value in ends.items():
        start, end = value[rows:], value[:rows]
        scaled = torch.cat([start + alpha * (end - start) for alpha in alphas]).requires_grad_()
        logits, _ = run_taps(
            problem,
            layer_inputs(problem, x, scaled.shape[0]),
            edit_key=key,
            edit=lambda output, scaled=scaled: scaled,
        )
        (grad,) = torch.autograd.grad(target_logits(logits, targets.repeat(n_steps)).sum(), scaled)
        total = reshape_and_sum(
            grad.contiguous().view(n_steps, -1) * step_sizes, n_steps, rows, tuple(end.shape[1:])
        )
        result[key] = total * (end - start)
    return result


@torch.no_grad()
def feature_ablation(
    problem: AttributionProblem,
    x: Tensor,
    targets: Tensor,
    *,
    max_rows: int | None = None,
) -> Attributions:
    """LayerFeatureAblation per unit: target logit minus the target logit with unit f zeroed.

    A unit is a feature of a linear layer or a whole channel of a conv layer. Units are
    ablated in groups: one pass has at most ``max_rows`` rows (all units at once if None).
    """
    rows = x.shape[0]
    logits, taps = run_taps(problem, x)
    original = target_logits(logits, targets)
    result = {}
    for key, value in taps.items():
        units = value.shape[1]
        group = units if max_rows is None else max(1, max_rows // rows)
        columns = []
        for first in range(0, units, group):
            count = min(group, units - first)
            variants = value.unsqueeze(0).repeat(count, *([1] * value.dim()))
            positions = torch.arange(count, device=value.device)
            variants[positions, :, first + positions] = 0
            variants = variants.reshape(count * rows, *value.shape[1:])
            ablated, _ = run_taps(
                problem,
                layer_inputs(problem, x, variants.shape[0]),
                edit_key=key,
                edit=lambda output, variants=variants: variants,
            )
            ablated = target_logits(ablated, targets.repeat(count)).view(count, rows)
            columns.append((original.unsqueeze(0) - ablated).t())
        result[key] = torch.cat(columns, dim=1)
    return result

