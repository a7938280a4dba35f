"""HAT: hard attention to the task (Serra et al., ICML 2018), docs/spec.md §1-§3."""

from __future__ import annotations

from typing import Any

from hatcl.algorithms.hat_family import HATFamily
from hatcl.algorithms.hat_mechanism import HATRule
from hatcl.algorithms.hat_options import HATOptions, options_signature, split_options
from hatcl.algorithms.registries import HAT_ADJUSTMENT_MODES
from hatcl.validation import check_number


@options_signature(HATOptions)
class HAT(HATFamily):
    """Hard attention masks per task; gradients of units used by earlier tasks are blocked.

    Args:
        adjustment_mode: ``hat``, ``hat_random``, ``hat_const_alpha`` or ``hat_const_1``.
        alpha: the constant of ``hat_const_alpha`` (required by it, ignored otherwise).
        **options: the shared HAT-family options (:class:`~hatcl.algorithms.hat_options.HATOptions`:
            ``s_max``, ``clamp_threshold``, ``mask_sparsity_reg_factor``,
            ``mask_sparsity_reg_mode``, ``task_embedding_init_mode``, ``embedding_clamp``).
    """

    def __init__(
        self,
        *,
        adjustment_mode: str = "hat",
        alpha: float | None = None,
        **options: Any,
    ) -> None:
        (shared,) = split_options(options, (HATOptions,), owner="HAT")
        mode = HAT_ADJUSTMENT_MODES.validate(adjustment_mode, parameter="adjustment_mode")
        if mode == "hat_const_alpha" and alpha is None:
            raise ValueError(
                "adjustment_mode 'hat_const_alpha' requires alpha (a number in [0, 1])"
            )
        if alpha is not None:
            check_number(alpha, parameter="alpha", low=0.0, high=1.0)
        super().__init__(
            rule=HATRule(mode=HAT_ADJUSTMENT_MODES.get(mode), alpha=alpha), **shared
        )
        self.adjustment_mode = mode
        self.alpha = alpha
