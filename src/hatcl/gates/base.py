"""Shared machinery of the stochastic gates: validation, mask expansion, the L0 regulariser.

The distribution-specific parts (sampling, gate means, active probabilities) live in the
subclasses; everything else -- argument checks, grouping the input through the mask, the
hard-sigmoid, the reduction of the regulariser -- is implemented once here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from hatcl.functional.gates import hard_sigmoid
from hatcl.registry import Registry
from hatcl.validation import check_int, check_number

_T = TypeVar("_T")


class GatesInputError(ValueError, AssertionError):
    """A bad argument or input of the stochastic gates, with a message naming what fits.

    Both a ``ValueError`` (hatcl's kind of user error) and an ``AssertionError``, which is what
    Captum's ``captum.module`` gates raise for the same inputs: code written against Captum that
    catches ``AssertionError`` keeps working with ``hatcl.gates``.
    """


def checked(check: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a :mod:`hatcl.validation` check; a ``ValueError`` becomes a :class:`GatesInputError`."""
    try:
        return check(*args, **kwargs)
    except GatesInputError:
        raise
    except ValueError as error:
        raise GatesInputError(str(error)) from None


REG_REDUCTIONS = Registry("reg_reduction")
"""How the per-gate active probabilities are reduced into the L0 regulariser."""


@REG_REDUCTIONS.register("none", summary="no reduction: the (n_gates,) active probabilities")
def _reduce_none(probs: Tensor) -> Tensor:
    return probs


@REG_REDUCTIONS.register("mean", summary="the mean of the active probabilities")
def _reduce_mean(probs: Tensor) -> Tensor:
    return probs.mean()


@REG_REDUCTIONS.register("sum", summary="the sum of the active probabilities (expected L0 norm)")
def _reduce_sum(probs: Tensor) -> Tensor:
    return probs.sum()


_INTEGER_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


def check_mask(mask: Any, n_gates: int) -> Tensor | None:
    """Validate a gate-grouping mask and return a detached int64 copy (or ``None``).

    Raises:
        GatesInputError: if the mask is not an integer tensor with values in
            ``0..n_gates - 1`` whose largest value is ``n_gates - 1``.
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise GatesInputError(
            f"mask must be an integer torch.Tensor or None, got {type(mask).__name__}"
        )
    if mask.dtype not in _INTEGER_DTYPES:
        raise GatesInputError(
            f"mask must have an integer dtype (e.g. torch.long), got {mask.dtype}"
        )
    if mask.numel() == 0:
        raise GatesInputError(f"mask must not be empty, got shape {tuple(mask.shape)}")
    low, high = int(mask.min()), int(mask.max())
    if low < 0:
        raise GatesInputError(f"mask values must lie in 0..{n_gates - 1} (0..n_gates-1), got {low}")
    if high != n_gates - 1:
        raise GatesInputError(
            f"the largest mask value must equal n_gates - 1 = {n_gates - 1} "
            f"(each mask index is one gate), got {high}"
        )
    return mask.detach().clone().to(torch.long)


def normal_init(n_gates: int, *, mean: float, std: float) -> nn.Parameter:
    """A learnable (n_gates,) vector drawn as n_gates normals from the default generator."""
    values = torch.empty(n_gates)
    with torch.no_grad():
        values.normal_(mean=mean, std=std)
    return nn.Parameter(values)


class StochasticGatesBase(nn.Module):
    """Gates each input element (or group of elements) by a learnable stochastic gate in [0, 1].

    Subclasses provide the gate distribution through ``_sample_gate_values``,
    ``_get_gate_values`` and ``_get_gate_active_probs``; their learnable parameter is named by
    ``param_name``. The positional argument order follows ``captum.module`` so that code written
    for Captum runs unchanged.

    Args:
        n_gates: number of gates (>= 1).
        mask: optional integer tensor broadcastable to the input shape (batch dim included) with
            values in ``0..n_gates - 1``; elements with the same value share one gate. Without a
            mask each element of ``input[0]`` has its own gate.
        reg_weight: non-negative factor of the L0 regulariser.
        reg_reduction: ``"none"`` | ``"mean"`` | ``"sum"`` (see ``REG_REDUCTIONS``).
    """

    param_name: ClassVar[str] = ""
    mask: Tensor | None

    def __init__(
        self,
        n_gates: int,
        mask: Tensor | None = None,
        reg_weight: float = 1.0,
        reg_reduction: str = "sum",
    ) -> None:
        super().__init__()
        self.n_gates = checked(check_int, n_gates, parameter="n_gates", low=1)
        self.reg_weight = checked(check_number, reg_weight, parameter="reg_weight", low=0.0)
        self.reg_reduction = checked(
            REG_REDUCTIONS.validate, reg_reduction, parameter="reg_reduction"
        )
        self.register_buffer("mask", check_mask(mask, self.n_gates))

    def forward(self, input_tensor: Tensor) -> tuple[Tensor, Tensor]:
        """Gate the input and compute the L0 regulariser.

        Args:
            input_tensor: tensor of shape (batch, ...) to gate.

        Returns:
            The gated input (same shape) and ``l0_reg``, ``reg_weight`` times the reduced active
            probabilities (a scalar, or (n_gates,) for ``reg_reduction="none"``).

        Raises:
            GatesInputError: if the input does not fit the gates or the mask (both shapes named;
                a ``ValueError`` and an ``AssertionError``).
        """
        self._check_input(input_tensor)
        batch_size = input_tensor.shape[0]
        gate_values = hard_sigmoid(self._sample_gate_values(batch_size))
        gated_input = input_tensor * self._expand_to_input(gate_values, input_tensor)
        reduce = REG_REDUCTIONS.get(self.reg_reduction)
        l0_reg = self.reg_weight * reduce(self._get_gate_active_probs())
        return gated_input, l0_reg

    def get_gate_values(self, clamp: bool = True) -> Tensor:
        """Detached means of the gate distributions, shape (n_gates,), clamped to [0, 1] by default.

        Args:
            clamp: clamp into [0, 1]; turn off to rank gates whose means lie beyond 0 or 1.
        """
        values = self._get_gate_values()
        if clamp:
            values = hard_sigmoid(values)
        return values.detach().clone()

    def get_gate_active_probs(self) -> Tensor:
        """Detached probabilities that each gate is non-zero, shape (n_gates,)."""
        return self._get_gate_active_probs().detach().clone()

    def extra_repr(self) -> str:
        """Summary shown in ``repr``."""
        grouped = "none" if self.mask is None else tuple(self.mask.shape)
        return (
            f"n_gates={self.n_gates}, mask={grouped}, reg_weight={self.reg_weight}, "
            f"reg_reduction={self.reg_reduction!r}"
        )

    @classmethod
    def _build_pretrained(cls, values: Any, args: tuple, kwargs: dict) -> StochasticGatesBase:
        if not isinstance(values, Tensor) or values.dim() != 1 or not values.is_floating_point():
            shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise GatesInputError(
                f"{cls.param_name} must be a 1-D floating-point tensor of length n_gates, "
                f"got {shape}"
            )
        gates = cls(values.numel(), *args, **kwargs)
        with torch.no_grad():
            getattr(gates, cls.param_name).copy_(values)
        return gates

    def _empty_noise(self, batch_size: int, like: Tensor) -> Tensor:
        """An uninitialised (batch_size, n_gates) tensor on ``like``'s device and dtype."""
        return torch.empty(batch_size, self.n_gates, device=like.device, dtype=like.dtype)

    def _check_input(self, input_tensor: Tensor) -> None:
        if not isinstance(input_tensor, Tensor):
            raise GatesInputError(f"input_tensor must be a torch.Tensor, got {type(input_tensor)}")
        shape = tuple(input_tensor.shape)
        if input_tensor.dim() < 2:
            raise GatesInputError(
                f"input_tensor must have shape (batch, ...) with at least 2 dimensions, "
                f"got shape {shape}"
            )
        if self.mask is None:
            if input_tensor[0].numel() != self.n_gates:
                raise GatesInputError(
                    f"without a mask each element of input_tensor[0] needs its own gate: input "
                    f"shape {shape} has {input_tensor[0].numel()} elements per example, but "
                    f"n_gates is {self.n_gates}"
                )
            return
        mask_shape = tuple(self.mask.shape)
        if not _broadcasts_to(mask_shape, shape):
            raise GatesInputError(
                f"mask of shape {mask_shape} does not broadcast to input_tensor shape {shape}"
            )

    def _expand_to_input(self, gate_values: Tensor, input_tensor: Tensor) -> Tensor:
        """Map (batch, n_gates) gate values onto the input's elements through the mask."""
        if self.mask is None:
            return gate_values.reshape(input_tensor.shape)
        index = self.mask.expand(input_tensor.shape).reshape(input_tensor.shape[0], -1)
        return torch.gather(gate_values, 1, index).reshape(input_tensor.shape)

    def _sample_gate_values(self, batch_size: int) -> Tensor:
        """Raw (unclamped) gate values, (batch_size, n_gates); one noise draw if training."""
        raise NotImplementedError

    def _get_gate_values(self) -> Tensor:
        """Raw means of the gate distributions, shape (n_gates,)."""
        raise NotImplementedError

    def _get_gate_active_probs(self) -> Tensor:
        """Differentiable probabilities that each gate is non-zero, shape (n_gates,)."""
        raise NotImplementedError


def _broadcasts_to(source: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(source) > len(target):
        return False
    padded = (1,) * (len(target) - len(source)) + source
    return all(s in (1, t) for s, t in zip(padded, target))
