"""Pure math of stochastic gates (Yamada et al. 2020; Louizos et al. 2018).

Every function here is stateless and out of place, so its result can always be back-propagated.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def hard_sigmoid(z: Tensor) -> Tensor:
    """Fold a gate value into [0, 1]: ``clamp(z, 0, 1)``."""
    return torch.clamp(z, min=0.0, max=1.0)


def gaussian_active_probs(mu: Tensor, std: float) -> Tensor:
    """Probability that a Gaussian gate ``N(mu, std^2)`` is positive: ``Phi(mu / std)``."""
    return 0.5 * (1.0 + torch.erf((mu / std) / math.sqrt(2.0)))


def concrete_active_offset(temperature: float, lower_bound: float, upper_bound: float) -> float:
    """The log-odds shift ``temperature * log(-lower / upper)`` of a stretched concrete gate."""
    return temperature * math.log(-lower_bound / upper_bound)


def concrete_active_probs(
    log_alpha: Tensor, temperature: float, lower_bound: float, upper_bound: float
) -> Tensor:
    """Probability that a stretched binary-concrete gate is positive (Louizos et al., eq. 12)."""
    offset = concrete_active_offset(temperature, lower_bound, upper_bound)
    return torch.sigmoid(log_alpha - offset)


def concrete_relaxed_sample(u: Tensor, log_alpha: Tensor, temperature: float) -> Tensor:
    """Binary-concrete sample from uniform noise ``u``: ``sigmoid((logit(u) + log_alpha) / T)``."""
    return torch.sigmoid((torch.logit(u) + log_alpha) / temperature)


def stretch(s: Tensor, lower_bound: float, upper_bound: float) -> Tensor:
    """Stretch ``s`` in (0, 1) linearly onto (lower, upper)."""
    return s * (upper_bound - lower_bound) + lower_bound
