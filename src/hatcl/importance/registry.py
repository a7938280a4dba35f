"""Registry of FG-AdaHAT's neuron-wise importance measures (torch-free catalogue).

Each entry resolves to an :class:`hatcl.importance.base.ImportanceMeasure`. Measures live in
their own modules and are added here with ``IMPORTANCE_TYPES.add(name, "module:attribute")``.
"""

from hatcl.registry import Registry

IMPORTANCE_TYPES = Registry("importance_type")

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
)
