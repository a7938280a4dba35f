"""Stretched binary-concrete (hard-concrete) gates (Louizos et al., ICLR 2018)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hatcl.functional.gates import concrete_active_probs, concrete_relaxed_sample, stretch
from hatcl.gates.base import StochasticGatesBase, checked, normal_init
from hatcl.validation import check_number


class BinaryConcreteStochasticGates(StochasticGatesBase):
    """Hard-concrete gates ``z = clamp(stretch(sigmoid((logit(u) + log_alpha) / T)), 0, 1)``.

    Drop-in for Captum's class of the same name. ``log_alpha_param`` is learnable and initialised
    with n_gates normals (mean 0, std 0.01) drawn from the default generator in the constructor;
    each training forward draws one (batch, n_gates) tensor ``u ~ U(eps, 1 - eps)``. In eval mode
    the gates are ``clamp(stretch(sigmoid(log_alpha)), 0, 1)``. The L0 regulariser is built from
    the active probabilities ``sigmoid(log_alpha - T * log(-lower / upper))``.

    Args:
        n_gates: number of gates (>= 1).
        mask: optional integer grouping tensor, broadcastable to the input shape (batch dim
            included), values in ``0..n_gates - 1``, largest value ``n_gates - 1``.
        reg_weight: non-negative factor of the L0 regulariser.
        temperature: concrete temperature, strictly between 0 and 1.
        lower_bound: stretch lower bound (< 0).
        upper_bound: stretch upper bound (> 1).
        eps: the uniform noise is drawn from ``U(eps, 1 - eps)``; 0 <= eps < 0.5.
        reg_reduction: ``"none"`` | ``"mean"`` | ``"sum"``.
    """

    param_name = "log_alpha_param"

    def __init__(
        self,
        n_gates: int,
        mask: Tensor | None = None,
        reg_weight: float = 1.0,
        temperature: float = 2 / 3,
        lower_bound: float = -0.1,
        upper_bound: float = 1.1,
        eps: float = 1e-8,
        reg_reduction: str = "sum",
    ) -> None:
        super().__init__(n_gates, mask=mask, reg_weight=reg_weight, reg_reduction=reg_reduction)
        self.temperature = checked(
            check_number,
            temperature,
            parameter="temperature",
            low=0.0,
            high=1.0,
            low_inclusive=False,
            high_inclusive=False,
        )
        self.lower_bound = checked(
            check_number, lower_bound, parameter="lower_bound", high=0.0, high_inclusive=False
        )
        self.upper_bound = checked(
            check_number, upper_bound, parameter="upper_bound", low=1.0, low_inclusive=False
        )
        self.eps = checked(
            check_number, eps, parameter="eps", low=0.0, high=0.5, high_inclusive=False
        )
        self.log_alpha_param = normal_init(self.n_gates, mean=0.0, std=0.01)

    @classmethod
    def from_pretrained(
        cls, log_alpha_param: Tensor, *args: Any, **kwargs: Any
    ) -> BinaryConcreteStochasticGates:
        """Build gates whose ``log_alpha_param`` is the given 1-D tensor.

        Other arguments go to the constructor, whose initial draw still happens (and is then
        overwritten), so the generator advances exactly as when building the gates directly.
        """
        return cls._build_pretrained(log_alpha_param, args, kwargs)

    _from_pretrained = from_pretrained

    def extra_repr(self) -> str:
        """Summary shown in ``repr``."""
        return (
            f"{super().extra_repr()}, temperature={self.temperature}, "
            f"lower_bound={self.lower_bound}, upper_bound={self.upper_bound}, eps={self.eps}"
        )

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        log_alpha = self.log_alpha_param
        if self.training:
            u = self._empty_noise(batch_size, log_alpha)
            u.uniform_(self.eps, 1 - self.eps)
            s = concrete_relaxed_sample(u, log_alpha, self.temperature)
        else:
            s = torch.sigmoid(log_alpha).expand(batch_size, self.n_gates)
        return stretch(s, self.lower_bound, self.upper_bound)

    def _get_gate_values(self) -> Tensor:
        return stretch(torch.sigmoid(self.log_alpha_param), self.lower_bound, self.upper_bound)

    def _get_gate_active_probs(self) -> Tensor:
        return concrete_active_probs(
            self.log_alpha_param, self.temperature, self.lower_bound, self.upper_bound
        )
