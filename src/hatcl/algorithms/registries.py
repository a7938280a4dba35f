"""Registries of algorithms and their option strings (torch-free: entries are imported on use)."""

from hatcl.registry import Registry

ALGORITHMS = Registry("algorithm")
ALGORITHMS.add("finetuning", "hatcl.algorithms.finetuning:Finetuning", summary="no protection")
ALGORITHMS.add("hat", "hatcl.algorithms.hat:HAT", summary="hard attention to the task")
ALGORITHMS.add("fix", "hatcl.algorithms.fix:Fix", summary="backbone trained on task 1, then frozen")
ALGORITHMS.add(
    "independent",
    "hatcl.algorithms.independent:Independent",
    summary="a fresh backbone per task (no-transfer reference)",
)
ALGORITHMS.add(
    "joint",
    "hatcl.algorithms.joint:Joint",
    summary="trains on the union of all seen tasks (upper reference)",
)
ALGORITHMS.add("ewc", "hatcl.algorithms.ewc:EWC", summary="elastic weight consolidation")
ALGORITHMS.add("lwf", "hatcl.algorithms.lwf:LwF", summary="learning without forgetting")

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

EWC_MODES = Registry("ewc_mode")
EWC_MODES.add(
    "separate",
    "hatcl.functional.ewc:merge_separate",
    summary="one penalty per task, summed (Kirkpatrick et al. 2017)",
)
EWC_MODES.add(
    "online",
    "hatcl.functional.ewc:merge_online",
    summary="F <- gamma F + F_t, latest anchor (Schwarz et al. 2018)",
)
