"""Registries of algorithms and their option strings (torch-free: entries are imported on use)."""

from hatcl.registry import Registry

ALGORITHMS = Registry("algorithm")
ALGORITHMS.add("finetuning", "hatcl.algorithms.finetuning:Finetuning", summary="no protection")
ALGORITHMS.add("hat", "hatcl.algorithms.hat:HAT", summary="hard attention to the task")

HAT_ADJUSTMENT_MODES = Registry("adjustment_mode")
HAT_ADJUSTMENT_MODES.add("hat", "hatcl.functional.rates:hat_rate", summary="rate = 1 - P")
HAT_ADJUSTMENT_MODES.add(
    "hat_random", "hatcl.functional.rates:hat_random_rate", summary="rate = U(0,1) P + 1 - P"
)
HAT_ADJUSTMENT_MODES.add(
    "hat_const_alpha",
    "hatcl.functional.rates:hat_const_alpha_rate",
    summary="rate = alpha P + 1 - P",
)
HAT_ADJUSTMENT_MODES.add(
    "hat_const_1", "hatcl.functional.rates:hat_const_1_rate", summary="rate = 1 (no protection)"
)
