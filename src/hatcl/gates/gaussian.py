"""Gaussian stochastic gates (Yamada et al., "Feature Selection using Stochastic Gates", 2020)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from hatcl.functional.gates import gaussian_active_probs
from hatcl.gates.base import StochasticGatesBase, checked, normal_init
from hatcl.validation import check_number


class GaussianStochasticGates(StochasticGatesBase):
    """Stochastic gates ``z = clamp(mu + N(0, std^2), 0, 1)``, drop-in for Captum's class.

    The mean ``mu`` is learnable and initialised with n_gates normals (mean 0.5, std 0.01) drawn
    from the default generator in the constructor; each training forward draws one
    (batch, n_gates) tensor of noise. In eval mode the gates are ``clamp(mu, 0, 1)``. The L0
    regulariser is built from the active probabilities ``Phi(mu / std)``.

    Args:
        n_gates: number of gates (>= 1).
        mask: optional integer grouping tensor, broadcastable to the input shape (batch dim
            included), values in ``0..n_gates - 1``, largest value ``n_gates - 1``.
        reg_weight: non-negative factor of the L0 regulariser.
        std: fixed standard deviation of the gate noise (> 0).
        reg_reduction: ``"none"`` | ``"mean"`` | ``"sum"``.

    Example:
        >>> gates = GaussianStochasticGates(5, reg_weight=0.01)
        >>> gated, l0_reg = gates(torch.randn(3, 5))
    """

    param_name = "mu"

    def __init__(
        self,
        n_gates: int,
        mask: Tensor | None = None,
        reg_weight: float = 1.0,
        std: float = 0.5,
        reg_reduction: str = "sum",
    ) -> None:
        super().__init__(n_gates, mask=mask, reg_weight=reg_weight, reg_reduction=reg_reduction)
        self.std = checked(check_number, std, parameter="std", low=0.0, low_inclusive=False)
        self.mu = normal_init(self.n_gates, mean=0.5, std=0.01)

    @classmethod
    def from_pretrained(cls, mu: Tensor, *args: Any, **kwargs: Any) -> GaussianStochasticGates:
        """Build gates whose ``mu`` is the given 1-D tensor; other arguments go to the constructor.

        The constructor's initial draw still happens (it is then overwritten), so the generator
        advances exactly as when building the gates directly.
        """
        return cls._build_pretrained(mu, args, kwargs)

    _from_pretrained = from_pretrained

    def extra_repr(self) -> str:
        """Summary shown in ``repr``."""
        return f"{super().extra_repr()}, std={self.std}"

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        if self.training:
            noise = self._empty_noise(batch_size, self.mu)
            noise.normal_(mean=0.0, std=self.std)
            return self.mu + noise
        return self.mu.expand(batch_size, self.n_gates)

    def _get_gate_values(self) -> Tensor:
        return self.mu

    def _get_gate_active_probs(self) -> Tensor:
        return gaussian_active_probs(self.mu, self.std)
