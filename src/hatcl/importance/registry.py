"""Registry of FG-AdaHAT's neuron-wise importance measures (torch-free catalogue).

Each entry resolves to an :class:`hatcl.importance.base.ImportanceMeasure`. Measures live in
their own modules and are added here with ``IMPORTANCE_TYPES.add(name, "module:attribute")``.
"""

from dataclasses import dataclass
from typing import Any

from hatcl.registry import Registry, import_path_target, is_import_path

IMPORTANCE_TYPES = Registry("importance_type")


@dataclass(frozen=True)
class MeasureInfo:
    """What is known of a measure without importing it (the registry entry's ``info``).

    Attributes:
        plugin_options: the FG-AdaHAT options its plugin takes (checked at preflight, whatever
            measure is chosen); the measure's own ``plugin_options`` is this same tuple.
    """

    plugin_options: tuple[str, ...] = ()


#: The stochastic gates' plugin options (``stochastic_gates.STOCHASTIC_GATES``).
STOCHASTIC_GATES_OPTIONS = ("stochastic_gates_reg_weight", "stochastic_gates_std")


def declares_plugin(name: str) -> bool:
    """Whether the registered measure ``name`` has a plugin, importing it only if it says so.

    A measure added by import path declares its plugin in its entry's :class:`MeasureInfo`; one
    already in memory (registered directly, or imported) is asked itself.
    """
    if IMPORTANCE_TYPES.loaded(name):
        return getattr(IMPORTANCE_TYPES.get(name), "plugin", None) is not None
    info = IMPORTANCE_TYPES.info(name)
    return isinstance(info, MeasureInfo) and bool(info.plugin_options)


def resolve_importance(name: object) -> Any:
    """The measure of ``importance_type``: a registered name or ``package.module:NAME``.

    A measure given by its import path must be an
    :class:`hatcl.importance.base.ImportanceMeasure`; it is resolved, not registered.

    Raises:
        ValueError: an unknown name, a path that cannot be imported, or not a measure.
    """
    if not is_import_path(name) or name in IMPORTANCE_TYPES:
        return IMPORTANCE_TYPES.resolve(name, parameter="importance_type")
    from hatcl.importance.base import ImportanceMeasure

    expected = "an ImportanceMeasure (hatcl.importance.base): see docs/extending.md"
    measure = import_path_target(name, parameter="algorithm.importance_type", expected=expected)
    if not isinstance(measure, ImportanceMeasure):
        raise ValueError(
            f"algorithm.importance_type={name!r} is a {type(measure).__name__}, not {expected}"
        )
    return measure

_BASIC = "hatcl.importance.nonattribution"
for _name, _summary in (
    ("input_weight_abs_sum", "fan_in(|W_l|)"),
    ("output_weight_abs_sum", "fan_out(|W_next|)"),
    ("input_weight_gradient_abs_sum", "[IG] fan_in(|g(W_l)|)"),
    ("output_weight_gradient_abs_sum", "[OG] fan_out(|g(W_next)|)"),
    ("activation_abs", "bam(h_l)"),
    ("input_weight_abs_sum_x_activation_abs", "[ICU] fan_in(|W_l|) bam(h_l)"),
    ("output_weight_abs_sum_x_activation_abs", "[CU] fan_out(|W_next|) bam(h_l)"),
    ("input_weight_gradient_square_sum", "fan_in(g(W_l)^2)"),
    ("output_weight_gradient_square_sum", "fan_out(g(W_next)^2)"),
    (
        "input_weight_gradient_square_sum_x_activation_abs",
        "[AFI] fan_in(g(W_l)^2) bam(h_l)",
    ),
    (
        "output_weight_gradient_square_sum_x_activation_abs",
        "fan_out(g(W_next)^2) bam(h_l)",
    ),
    ("cbp_adaptation", "1 / fan_in(|W_l|)"),
    ("cbp_adaptive_contribution", "fan_out(|W_next|) bam(h_l) / fan_in(|W_l|)"),
):
    IMPORTANCE_TYPES.add(_name, f"{_BASIC}:{_name.upper()}", summary=_summary)

IMPORTANCE_TYPES.add(
    "stochastic_gates",
    "hatcl.importance.stochastic_gates:STOCHASTIC_GATES",
    summary="Phi(mu_l / std) of L0 gates trained on h_l during the task",
    info=MeasureInfo(plugin_options=STOCHASTIC_GATES_OPTIONS),
)
_ATTRIBUTION = "hatcl.importance.attribution.measures"
IMPORTANCE_TYPES.add(
    "gradient_x_activation_abs",
    f"{_ATTRIBUTION}:GRADIENT_X_ACTIVATION_ABS",
    summary="bam(gradient x activation of h_l), Captum LayerGradientXActivation",
)
IMPORTANCE_TYPES.add(
    "conductance_abs",
    f"{_ATTRIBUTION}:CONDUCTANCE_ABS",
    summary="bam(LayerConductance of h_l), 50 steps, zero baseline",
)
IMPORTANCE_TYPES.add(
    "internal_influence_abs",
    f"{_ATTRIBUTION}:INTERNAL_INFLUENCE_ABS",
    summary="bam(InternalInfluence of h_l), 5 steps, zero baseline",
)
IMPORTANCE_TYPES.add(
    "gradcam_abs",
    f"{_ATTRIBUTION}:GRADCAM_ABS",
    summary="bam(per-channel Grad-CAM term of h_l)",
)
IMPORTANCE_TYPES.add(
    "deeplift_abs",
    f"{_ATTRIBUTION}:DEEPLIFT_ABS",
    summary="bam(LayerDeepLift of h_l), zero baseline",
)
IMPORTANCE_TYPES.add(
    "deepliftshap_abs",
    f"{_ATTRIBUTION}:DEEPLIFTSHAP_ABS",
    summary="bam(LayerDeepLiftShap of h_l), 10 reference inputs of the batch",
)
IMPORTANCE_TYPES.add(
    "gradientshap_abs",
    f"{_ATTRIBUTION}:GRADIENTSHAP_ABS",
    summary="bam(LayerGradientShap of h_l), zero baselines, 5 samples",
)
IMPORTANCE_TYPES.add(
    "integrated_gradients_abs",
    f"{_ATTRIBUTION}:INTEGRATED_GRADIENTS_ABS",
    summary="bam(LayerIntegratedGradients of h_l), 50 steps, zero baseline",
)
IMPORTANCE_TYPES.add(
    "feature_ablation_abs",
    f"{_ATTRIBUTION}:FEATURE_ABLATION_ABS",
    summary="mean over the batch of |target logit change| when unit f of h_l is zeroed",
)
IMPORTANCE_TYPES.add(
    "lrp_abs",
    f"{_ATTRIBUTION}:LRP_ABS",
    summary="bam(LayerLRP of h_l), epsilon rules",
)
