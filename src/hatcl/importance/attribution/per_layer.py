"""Captum called once per layer (the reference's way): the oracle of the shared implementations.

Each function returns ``{mask_key: attribution of h_l}`` with Captum 0.9.0's own result for
every tap, using docs/spec.md's parameters (Captum's defaults unless stated: internal influence
uses 5 steps; Grad-CAM keeps the per-channel term; zero baselines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import torch
from captum.attr import (
    InternalInfluence,
    LayerConductance,
    LayerDeepLift,
    LayerDeepLiftShap,
    LayerFeatureAblation,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LayerLRP,
)
from captum.attr._core.layer import layer_gradient_shap
from torch import Tensor, nn

from hatcl.importance.attribution.bound import BoundLogits
from hatcl.importance.attribution.lrp_rules import lrp_rules
from hatcl.importance.attribution.shared import (
    GRADIENT_SHAP_SAMPLES,
    INTERNAL_INFLUENCE_STEPS,
    AttributionProblem,
    Attributions,
)

LayerCall = Callable[[BoundLogits, nn.Module, Tensor, Tensor], Tensor]


def _gradient_x_activation(bound, tap, x, targets, **_):
    return LayerGradientXActivation(bound, tap).attribute(x, target=targets)


def _gradcam(bound, tap, x, targets, **_):
    return LayerGradCam(bound, tap).attribute(x, target=targets, attr_dim_summation=False)


def _deeplift(bound, tap, x, targets, **_):
    return LayerDeepLift(bound, tap).attribute(x, target=targets)


def _deepliftshap(bound, tap, x, targets, *, references: Tensor, **_):
    return LayerDeepLiftShap(bound, tap).attribute(x, baselines=references, target=targets)


@contextmanager
def given_path_coefficients(alphas: Tensor | None) -> Iterator[None]:
    """Let Captum's ``LayerGradientShap`` use ``alphas`` as its path coefficients.

    Captum draws them inside the call with NumPy's global ``uniform``, one per expanded row
    (sample-major: the ``n_samples`` rows of a sample are consecutive). For the duration of the
    block, that one call site (in Captum's ``layer_gradient_shap`` module, nothing global)
    returns ``alphas`` instead. With ``alphas=None`` Captum draws as usual.
    """
    if alphas is None:
        yield
        return
    values = alphas.detach().reshape(-1).cpu().numpy()

    def uniform(low: float, high: float, size: int) -> np.ndarray:
        if (low, high, size) != (0.0, 1.0, values.size):
            raise RuntimeError(
                f"Captum asked for uniform({low}, {high}, {size}); the step drew "
                f"{values.size} path coefficients in [0, 1]"
            )
        return values.copy()

    original = layer_gradient_shap.np
    layer_gradient_shap.np = SimpleNamespace(random=SimpleNamespace(uniform=uniform))
    try:
        yield
    finally:
        layer_gradient_shap.np = original


def _gradientshap(bound, tap, x, targets, *, alphas: Tensor | None = None, **_):
    samples = GRADIENT_SHAP_SAMPLES if alphas is None else alphas.shape[1]
    with given_path_coefficients(alphas):
        return LayerGradientShap(bound, tap).attribute(
            x, baselines=torch.zeros_like(x), n_samples=samples, target=targets
        )


def _integrated_gradients(bound, tap, x, targets, **_):
    return LayerIntegratedGradients(bound, tap).attribute(x, target=targets)


def _conductance(bound, tap, x, targets, **_):
    return LayerConductance(bound, tap).attribute(x, target=targets)


def _internal_influence(bound, tap, x, targets, **_):
    return InternalInfluence(bound, tap).attribute(
        x, target=targets, n_steps=INTERNAL_INFLUENCE_STEPS
    )


def _feature_ablation(bound, tap, x, targets, *, unit_shape: tuple[int, ...], **_):
    mask = None
    if len(unit_shape) > 1:
        channels = torch.arange(unit_shape[0], device=x.device)
        mask = channels.view(1, -1, *([1] * (len(unit_shape) - 1))).expand(1, *unit_shape)
    result = LayerFeatureAblation(bound, tap).attribute(x, target=targets, layer_mask=mask)
    return result if mask is None else result.flatten(2)[:, :, 0]


def _lrp(bound, tap, x, targets, **_):
    with lrp_rules(bound):
        return LayerLRP(bound, tap).attribute(x, target=targets)


CAPTUM_LAYER_METHODS: dict[str, LayerCall] = {
    "gradient_x_activation": _gradient_x_activation,
    "gradcam": _gradcam,
    "deeplift": _deeplift,
    "deepliftshap": _deepliftshap,
    "gradientshap": _gradientshap,
    "integrated_gradients": _integrated_gradients,
    "conductance": _conductance,
    "internal_influence": _internal_influence,
    "feature_ablation": _feature_ablation,
    "lrp": _lrp,
}


def captum_per_layer(
    method: str,
    problem: AttributionProblem,
    x: Tensor,
    targets: Tensor,
    *,
    references: Tensor | None = None,
    alphas: Tensor | None = None,
    unit_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Attributions:
    """Call Captum's layer method ``method`` once for every tap.

    Args:
        method: a key of :data:`CAPTUM_LAYER_METHODS`.
        problem: the logits-only model and its taps.
        x: inputs (a detached alias is passed to Captum, so ``x``'s flags stay as they are).
        targets: the target class of each sample.
        references: DeepLift SHAP's reference inputs.
        alphas: gradient SHAP's path coefficients ``(rows, n_samples)``, the same for every
            layer (None: Captum draws its own for each layer).
        unit_shapes: per mask key, the shape of h_l without the batch dim (feature ablation
            groups a conv layer's channel as one unit).
    """
    call = CAPTUM_LAYER_METHODS[method]
    result = {}
    for key, tap in problem.taps.items():
        shape = (unit_shapes or {}).get(key, (0,))
        attribution = call(
            problem.bound,
            tap,
            x.detach().requires_grad_(),
            targets,
            references=references,
            alphas=alphas,
            unit_shape=shape,
        )
        result[key] = attribution.detach()
    return result
