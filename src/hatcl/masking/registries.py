"""Registries of the mask mechanism's options (torch-free: entries are imported on use)."""

from hatcl.registry import Registry

INIT_MODES = Registry("task_embedding_init_mode")
INIT_MODES.add("N01", "hatcl.masking.init_modes:init_normal", summary="normal(0, 1) (default)")
INIT_MODES.add("U-11", "hatcl.masking.init_modes:init_uniform_sym", summary="uniform(-1, 1)")
INIT_MODES.add("U01", "hatcl.masking.init_modes:init_uniform_pos", summary="uniform(0, 1)")
INIT_MODES.add("U-10", "hatcl.masking.init_modes:init_uniform_neg", summary="uniform(-1, 0)")
INIT_MODES.add("last", "hatcl.masking.init_modes:init_keep_last", summary="keep previous values")

AGGREGATIONS = Registry("neuron_to_weight_importance_aggregation_mode")
AGGREGATIONS.add("min", "hatcl.functional.aggregation:aggregate_min", summary="min(v_i, v_j)")
AGGREGATIONS.add("max", "hatcl.functional.aggregation:aggregate_max", summary="max(v_i, v_j)")
AGGREGATIONS.add("mean", "hatcl.functional.aggregation:aggregate_mean", summary="(v_i + v_j) / 2")

SPARSITY_MODES = Registry("mask_sparsity_reg_mode")
SPARSITY_MODES.add(
    "original", "hatcl.functional.sparsity:original_sparsity", summary="HAT's sparsity (default)"
)
SPARSITY_MODES.add(
    "cross", "hatcl.functional.sparsity:cross_sparsity", summary="also rewards reusing old units"
)

# The same modes as affine maps of the concatenated masks (what a training step evaluates);
# one entry per SPARSITY_MODES entry, same names.
SPARSITY_LINEAR_FORMS = Registry("mask_sparsity_reg_mode linear form")
SPARSITY_LINEAR_FORMS.add(
    "original", "hatcl.functional.sparsity:original_sparsity_linear", summary="see original"
)
SPARSITY_LINEAR_FORMS.add(
    "cross", "hatcl.functional.sparsity:cross_sparsity_linear", summary="see cross"
)
