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
ALGORITHMS.add("er", "hatcl.algorithms.replay:ER", summary="experience replay (reservoir memory)")
ALGORITHMS.add("der", "hatcl.algorithms.replay:DER", summary="dark experience replay (logits)")
ALGORITHMS.add(
    "derpp", "hatcl.algorithms.replay:DERPP", summary="DER++ (replayed logits and labels)"
)
ALGORITHMS.add(
    "wsn", "hatcl.algorithms.wsn:WSN", summary="winning subnetworks (per-task top-c weight masks)"
)

HAT_ADJUSTMENT_MODES = Registry("adjustment_mode")
HAT_ADJUSTMENT_MODES.add("hat", "hatcl.algorithms.hat_mechanism:HAT", summary="rate = 1 - P")
HAT_ADJUSTMENT_MODES.add(
    "hat_random", "hatcl.algorithms.hat_mechanism:HAT_RANDOM", summary="rate = U(0,1) P + 1 - P"
)
HAT_ADJUSTMENT_MODES.add(
    "hat_const_alpha",
    "hatcl.algorithms.hat_mechanism:HAT_CONST_ALPHA",
    summary="rate = alpha P + 1 - P",
)
HAT_ADJUSTMENT_MODES.add(
    "hat_const_1", "hatcl.algorithms.hat_mechanism:HAT_CONST_1", summary="rate = 1 (no protection)"
)

EWC_MODES = Registry("ewc_mode")
EWC_MODES.add(
    "separate",
    "hatcl.algorithms.ewc:SEPARATE",
    summary="one penalty per task, summed (Kirkpatrick et al. 2017)",
)
EWC_MODES.add(
    "online",
    "hatcl.algorithms.ewc:ONLINE",
    summary="F <- gamma F + F_t, latest anchor (Schwarz et al. 2018)",
)
ALGORITHMS.add(
    "adahat", "hatcl.algorithms.adahat:AdaHAT", summary="adaptive HAT (summative-mask rates)"
)
ALGORITHMS.add(
    "fgadahat",
    "hatcl.algorithms.fgadahat:FGAdaHAT",
    summary="fine-grained AdaHAT (neuron-importance rates)",
)

ADAHAT_ADJUSTMENT_MODES = Registry("adahat adjustment_mode")
ADAHAT_ADJUSTMENT_MODES.add(
    "adahat",
    "hatcl.algorithms.adahat:ADAHAT",
    summary="r = alpha / (epsilon + R_l), rate = r / (M_sum + r) (default)",
)
ADAHAT_ADJUSTMENT_MODES.add(
    "adahat_no_sum",
    "hatcl.algorithms.adahat:ADAHAT_NO_SUM",
    summary="rate = r / (t + r) for every parameter",
)
ADAHAT_ADJUSTMENT_MODES.add(
    "adahat_no_reg",
    "hatcl.algorithms.adahat:ADAHAT_NO_REG",
    summary="r = alpha / epsilon, rate = r / (M_sum + r)",
)

_SUMMING = "hatcl.importance.summing"
_SCHEDULERS = "hatcl.algorithms.schedulers"
SUMMING_STRATEGIES = Registry("importance_summing_strategy")
SUMMING_STRATEGIES.add("add_latest", f"{_SUMMING}:ADD_LATEST", summary="I += I^t")
SUMMING_STRATEGIES.add(
    "add_all", f"{_SUMMING}:ADD_ALL", summary="I += sum_{tau<=t} I^tau (reference default)"
)
SUMMING_STRATEGIES.add(
    "add_average", f"{_SUMMING}:ADD_AVERAGE", summary="I += (1/t) sum_{tau<=t} I^tau"
)
SUMMING_STRATEGIES.add(
    "linear_decrease",
    f"{_SUMMING}:LINEAR_DECREASE",
    summary="I = sum w I^tau, w = s k + 1 (needs importance_summing_strategy_linear_step)",
)
SUMMING_STRATEGIES.add(
    "quadratic_decrease", f"{_SUMMING}:QUADRATIC_DECREASE", summary="w = (k + 1)^2"
)
SUMMING_STRATEGIES.add("cubic_decrease", f"{_SUMMING}:CUBIC_DECREASE", summary="w = (k + 1)^3")
SUMMING_STRATEGIES.add(
    "exponential_decrease",
    f"{_SUMMING}:EXPONENTIAL_DECREASE",
    summary="w = r^(k + 1) (needs importance_summing_strategy_exponential_rate)",
)
SUMMING_STRATEGIES.add(
    "log_decrease",
    f"{_SUMMING}:LOG_DECREASE",
    summary="w = log_a(k + 1) + 1 (needs importance_summing_strategy_log_base)",
)
SUMMING_STRATEGIES.add(
    "factorial_decrease", f"{_SUMMING}:FACTORIAL_DECREASE", summary="w = (k + 1)!"
)

IMPORTANCE_SCHEDULERS = Registry("importance_scheduler_type")
IMPORTANCE_SCHEDULERS.add(
    "linear_sparsity_reg",
    f"{_SCHEDULERS}:linear_sparsity_reg",
    summary="c = (t + b_L) (R_l + b_R) (default)",
)
IMPORTANCE_SCHEDULERS.add("sparsity_reg", f"{_SCHEDULERS}:sparsity_reg", summary="c = R_l + b_R")
IMPORTANCE_SCHEDULERS.add(
    "summative_mask_sparsity_reg",
    f"{_SCHEDULERS}:summative_mask_sparsity_reg",
    summary="c = (min(M_sum_i, M_sum_j) + b_L) (R_l + b_R), parameter-wise",
)
