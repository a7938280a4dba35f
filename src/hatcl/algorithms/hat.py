"""HAT: hard attention to the task (Serra et al., ICML 2018), docs/spec.md §1-§3."""

from __future__ import annotations

from hatcl.algorithms.hat_family import HATFamily
from hatcl.algorithms.hat_mechanism import HATRule
from hatcl.algorithms.registries import HAT_ADJUSTMENT_MODES
from hatcl.validation import check_number


class HAT(HATFamily):
    """Hard attention masks per task; gradients of units used by earlier tasks are blocked.

    Args:
        s_max: the largest mask scale (end of annealing, validation).
        clamp_threshold: clamp of ``s * e`` in the embedding gradient compensation.
        mask_sparsity_reg_factor: weight of the mask sparsity regulariser.
        mask_sparsity_reg_mode: ``original`` or ``cross``.
        task_embedding_init_mode: ``N01``, ``U-11``, ``U01``, ``U-10`` or ``last``.
        adjustment_mode: ``hat``, ``hat_random``, ``hat_const_alpha`` or ``hat_const_1``.
        alpha: the constant of ``hat_const_alpha`` (required by it, ignored otherwise).
        embedding_clamp: clamp embeddings to [-value, value] after each step (None: off).
    """

    def __init__(
        self,
        *,
        s_max: float = 400.0,
        clamp_threshold: float = 50.0,
        mask_sparsity_reg_factor: float = 0.1,
        mask_sparsity_reg_mode: str = "original",
        task_embedding_init_mode: str = "N01",
        adjustment_mode: str = "hat",
        alpha: float | None = None,
        embedding_clamp: float | None = None,
    ) -> None:
        mode = HAT_ADJUSTMENT_MODES.validate(adjustment_mode, parameter="adjustment_mode")
        if mode == "hat_const_alpha" and alpha is None:
            raise ValueError(
                "adjustment_mode 'hat_const_alpha' requires alpha (a number in [0, 1])"
            )
        if alpha is not None:
            check_number(alpha, parameter="alpha", low=0.0, high=1.0)
        super().__init__(
            rule=HATRule(mode=HAT_ADJUSTMENT_MODES.get(mode), alpha=alpha),
            s_max=s_max,
            clamp_threshold=clamp_threshold,
            mask_sparsity_reg_factor=mask_sparsity_reg_factor,
            mask_sparsity_reg_mode=mask_sparsity_reg_mode,
            task_embedding_init_mode=task_embedding_init_mode,
            embedding_clamp=embedding_clamp,
        )
        self.adjustment_mode = mode
        self.alpha = alpha
